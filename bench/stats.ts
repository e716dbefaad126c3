import { spawnSync } from 'node:child_process';

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export interface ProcessOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** Wall time of a whole process, in milliseconds; fails loudly when the process does. */
export function timeProcess(command: string, args: string[], options: ProcessOptions = {}): number {
  return timeProcessOutput(command, args, options).milliseconds;
}

/** The same, with what the process printed. */
export function timeProcessOutput(command: string, args: string[], options: ProcessOptions = {}): { milliseconds: number; stdout: string; stderr: string } {
  const started = process.hrtime.bigint();
  const result = spawnSync(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 * 1024 * 1024 });
  const milliseconds = Number(process.hrtime.bigint() - started) / 1e6;
  const stdout = result.stdout?.toString() ?? '';
  const stderr = result.stderr?.toString() ?? '';
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.status ?? result.error?.message}):\n${stderr}${stdout}`);
  return { milliseconds, stdout, stderr };
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
  /** The median against the first case of its series (how cost grows). */
  ratio?: number;
  /** The measured process's peak resident set size, in MiB (the largest of its runs). */
  peakRss?: number;
}

/** The table of a suite; the ratio and peak RSS columns only when some row has them. */
export function printTable(title: string, rows: Row[]): void {
  const width = Math.max(...rows.map((r) => r.name.length));
  const ratios = rows.some((r) => r.ratio !== undefined);
  const peaks = rows.some((r) => r.peakRss !== undefined);
  const ratio = (row: Row) => (ratios ? `  ${(row.ratio === undefined ? '' : `x${row.ratio.toFixed(2)}`).padStart(7)}` : '');
  const peak = (row: Row) => (peaks ? `  ${(row.peakRss === undefined ? '' : `${row.peakRss.toFixed(0)} MiB`).padStart(8)}` : '');
  console.log(`\n${title}`);
  console.log(
    `${'measurement'.padEnd(width)}  ${'median'.padStart(9)}  runs${ratios ? `  ${'ratio'.padStart(7)}` : ''}${peaks ? `  ${'peak RSS'.padStart(8)}` : ''}  target`,
  );
  for (const row of rows) {
    const verdict = row.target ? `${row.target} ${row.met ? 'ok' : 'MISSED'}` : '';
    console.log(`${row.name.padEnd(width)}  ${row.median.toFixed(1).padStart(6)} ms  ${String(row.runs).padStart(4)}${ratio(row)}${peak(row)}  ${verdict}`);
  }
}
