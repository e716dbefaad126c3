import { readFileSync } from 'node:fs';
import { HomecloudError } from '../load/errors.ts';
import { lazyChildProcess } from './lazy.ts';

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Run a program to completion; `check` turns a non-zero exit into an error naming the command and its output. */
export function run(program: string, args: string[], options: { input?: string; check?: boolean; env?: NodeJS.ProcessEnv; timeout?: number } = {}): RunResult {
  const result = lazyChildProcess().spawnSync(program, args, {
    input: options.input,
    env: options.env ?? process.env,
    encoding: 'utf8',
    timeout: options.timeout,
    maxBuffer: 64 << 20,
  });
  if (result.error) {
    const code = (result.error as NodeJS.ErrnoException).code;
    throw new HomecloudError(code === 'ENOENT' ? `${program} is not installed` : `cannot run ${program}: ${result.error.message}`);
  }
  const outcome = { status: result.status ?? 128, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
  if (options.check !== false && outcome.status !== 0) {
    const output = (outcome.stderr || outcome.stdout).trim().split('\n').slice(-5).join('\n  ');
    throw new HomecloudError(`${program} ${args.join(' ')} failed (exit status ${outcome.status})${output ? `:\n  ${output}` : ''}`);
  }
  return outcome;
}

/** Whether a process with this PID exists and has not ended (a zombie has ended: its parent just has not reaped it). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

export function sleep(milliseconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}
