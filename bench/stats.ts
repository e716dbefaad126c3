import { spawnSync } from 'node:child_process';

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Wall time of a whole process, in milliseconds; fails loudly when the process does. */
export function timeProcess(command: string, args: string[], options: { cwd?: string } = {}): number {
  const started = process.hrtime.bigint();
  const result = spawnSync(command, args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.status}):\n${result.stderr.toString()}${result.stdout.toString()}`);
  return elapsed;
}

export async function timeAsync(task: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await task();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

export interface Row {
  name: string;
  median: number;
  runs: number;
  /** The target, as text, and whether the median meets it. */
  target?: string;
  met?: boolean;
}

export function printTable(title: string, rows: Row[]): void {
  const width = Math.max(...rows.map((r) => r.name.length));
  console.log(`\n${title}`);
  console.log(`${'measurement'.padEnd(width)}  ${'median'.padStart(9)}  runs  target`);
  for (const row of rows) {
    const verdict = row.target ? `${row.target} ${row.met ? 'ok' : 'MISSED'}` : '';
    console.log(`${row.name.padEnd(width)}  ${row.median.toFixed(1).padStart(6)} ms  ${String(row.runs).padStart(4)}  ${verdict}`);
  }
}
