/** Milliseconds since an arbitrary start: process.hrtime, because the `performance` global costs a module load. */
export function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Phase timings on stderr when HOMECLOUD_TIMINGS=1: where a command's milliseconds go. */
const enabled = process.env.HOMECLOUD_TIMINGS === '1';
let last = 0;

export function mark(phase: string): void {
  if (!enabled) return;
  const now = performance.now();
  process.stderr.write(`timing ${phase.padEnd(24)} ${now.toFixed(1).padStart(8)} ms  (+${(now - last).toFixed(1)})\n`);
  last = now;
}
