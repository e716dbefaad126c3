/** Milliseconds since an arbitrary start: process.hrtime, because the `performance` global costs a module load. */
export function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/**
 * Phase timings on stderr when HOMECLOUD_TIMINGS=1: where a command's milliseconds go, and the pages of
 * memory it touched for the first time (a page fault each; on some virtual machines 15 to 20 µs apiece).
 */
const enabled = process.env.HOMECLOUD_TIMINGS === '1';
let last = 0;
let lastFaults = 0;

export function mark(phase: string): void {
  if (!enabled) return;
  const now = performance.now();
  const faults = process.resourceUsage().minorPageFault;
  process.stderr.write(
    `timing ${phase.padEnd(24)} ${now.toFixed(1).padStart(8)} ms  (+${(now - last).toFixed(1)})  ${faults} page faults (+${faults - lastFaults})\n`,
  );
  last = now;
  lastFaults = faults;
}
