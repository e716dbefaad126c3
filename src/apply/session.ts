import { hostname, userInfo } from 'node:os';
import { probeScriptFor, readProbe, type ProbeOutcome } from '../facts/probe.ts';
import { HomecloudError, type MachinePhase } from '../load/errors.ts';
import type { RepoPaths } from '../load/repo.ts';
import { describeSshFailure, transportFor } from '../transport/ssh.ts';
import type { Target } from '../transport/transport.ts';
import { bashData, bashFile, targetScript } from '../util/bash-file.ts';
import type { ProcessResult } from '../util/process.ts';
import { pathData, rootFunctions } from './target-paths.ts';

/** Who holds a machine's lock, as the holder wrote it. */
export interface LockHolder {
  command: string;
  started: string;
  host: string;
  user: string;
}

export interface LockOptions {
  /** What the lock is taken for: deploy, rollback, clobber. */
  command: string;
  /** How long to wait for another holder, in seconds. */
  waitSeconds: number;
  /** Hears that another deploy holds the machine, once, before waiting. */
  onWaiting?: (holder: LockHolder | undefined) => void;
  signal?: AbortSignal;
}

/** A machine whose lock we hold: probed after the lock was taken, so what it said stays true until we let go. */
export interface LockedMachine {
  probe: ProbeOutcome;
  /**
   * Run a script detached from the connection: it holds the lock to its end,
   * even when the connection is cut or the deploy is interrupted (then the
   * next deploy waits for it). Only one run per lock.
   */
  run(script: string, onLine?: (line: string) => void): Promise<ProcessResult>;
  /** Let go of the lock (a run still going keeps it until it ends). */
  release(): Promise<void>;
}

/**
 * Take the machine's lock (waiting for another deploy up to a timeout), then
 * probe it, all in one connection that stays open: the remote shell keeps the
 * lock while we plan and transfer, and hands it to the detached run.
 */
export async function lockMachine(repo: RepoPaths, target: Target, options: LockOptions): Promise<LockedMachine> {
  const started = Date.now();
  const holder = `command=${options.command} started=${new Date().toISOString()} ${deployer()}`;
  const script = lockScript(holder, options.waitSeconds, probeScriptFor(repo, target.machine));
  const transport = transportFor(target);
  const session = transport.open(script, { signal: options.signal });
  const failure = (message: string, hint?: string, phase: MachinePhase = 'lock') =>
    new HomecloudError(message, undefined, hint, { machine: target.machine, phase });
  let waited: LockHolder | undefined;
  for (;;) {
    const line = await session.nextLine();
    if (line === undefined) {
      const ended = await session.done;
      throw failure(
        lockFailure(target, ended, waited, options.waitSeconds),
        waited ? 'deploy again once it has ended, or wait longer with --wait SECONDS' : undefined,
        ended.status === 255 ? 'connect' : 'lock',
      );
    }
    if (line === 'locked') break;
    const waiting = /^waiting (.*)$/.exec(line);
    if (waiting) {
      waited = parseHolder(waiting[1]!);
      options.onWaiting?.(waited);
    }
    if (line === 'lock-timeout') {
      session.end();
      await session.done;
      throw failure(lockFailure(target, undefined, waited, options.waitSeconds), 'deploy again once it has ended, or wait longer with --wait SECONDS');
    }
  }
  const lines: string[] = [];
  for (let line = await session.nextLine(); line !== 'probed'; line = await session.nextLine()) {
    if (line === undefined) {
      const ended = await session.done;
      throw failure(transport.describeFailure(ended.stderr), undefined, 'probe');
    }
    lines.push(line);
  }
  const probe = readProbe(repo, target, lines, Date.now() - started);
  let ran = false;
  return {
    probe,
    run: async (runScript, onLine) => {
      if (ran) throw new Error('one run per lock');
      ran = true;
      const out: string[] = [];
      session.follow((line) => {
        out.push(line);
        onLine?.(line);
      });
      session.write(`run ${Buffer.byteLength(runScript)}\n`);
      session.write(runScript);
      session.end();
      const ended = await session.done;
      return { ...ended, stdout: [...out, ended.stdout].join('\n') };
    },
    release: async () => {
      session.end();
      await session.done;
    },
  };
}

let who: string | undefined;

/** `host=... user=...` of whoever deploys: looked up once (the user name reads the password database), not per machine. */
function deployer(): string {
  return (who ??= `host=${hostname()} user=${process.env.SUDO_USER ?? userInfo().username}`);
}

const lockBash = bashFile(new URL('./lock.bash', import.meta.url));

/**
 * The remote side of a lock (lock.bash): take the lock (fd 9), saying who
 * holds it while waiting; run the probe; then wait for one `run <bytes>`
 * command, whose script runs detached and inherits the lock. End of input
 * lets go.
 */
export function lockScript(holder: string, waitSeconds: number, probe: string): string {
  const data = bashData({ ...pathData('lock_dir', 'machine_lock', 'lock_holder', 'state_dir'), holder, wait_seconds: Math.max(0, Math.round(waitSeconds)) });
  // The probe is bash text, which lock.bash runs with eval; it reads `locked`.
  const probeData = `# shellcheck disable=SC2016\n${bashData({ probe_script: probe })}\n# shellcheck disable=SC2034\n${bashData({ locked: 'yes' })}`;
  return targetScript(`${data}\n${probeData}`, [rootFunctions, lockBash]);
}

function parseHolder(text: string): LockHolder | undefined {
  const fields = Object.fromEntries(
    text
      .split(' ')
      .map((pair) => pair.split('='))
      .filter((pair) => pair.length === 2),
  ) as Record<string, string>;
  if (!fields.started || !fields.host) return undefined;
  return { command: fields.command ?? 'deploy', started: fields.started, host: fields.host, user: fields.user ?? '?' };
}

/** "the deploy started at 12:01:07 from host x by y" */
export function describeHolder(holder: LockHolder | undefined): string {
  if (!holder) return 'another deploy';
  const when = new Date(holder.started);
  const time = Number.isNaN(when.getTime()) ? holder.started : when.toLocaleTimeString('en-GB');
  return `the ${holder.command} started at ${time} from host ${holder.host} by ${holder.user}`;
}

function lockFailure(target: Target, ended: ProcessResult | undefined, waited: LockHolder | undefined, seconds: number): string {
  if (ended && ended.status === 255) return transportFor(target).describeFailure(ended.stderr);
  if (waited || !ended) return `${describeHolder(waited)} still holds ${target.machine} after ${seconds} s: gave up waiting`;
  return `cannot take the lock of ${target.machine}: ${ended.stderr.trim().split('\n').pop() ?? `exit status ${ended.status}`}`;
}

/** Work on a machine under its lock, as a deploy takes it: the probe's error first, the lock let go after, whatever happens. */
export async function underLock<T>(
  repo: RepoPaths,
  target: Target,
  command: string,
  options: { waitSeconds: number; onWaiting?: (holder: string) => void },
  work: (locked: LockedMachine) => Promise<T>,
): Promise<T> {
  const locked = await lockMachine(repo, target, {
    command,
    waitSeconds: options.waitSeconds,
    onWaiting: (holder) => options.onWaiting?.(describeHolder(holder)),
  });
  try {
    if (locked.probe.error) throw locked.probe.error;
    return await work(locked);
  } finally {
    await locked.release();
  }
}

/** The error of a layer's script that failed on a machine: the connection's own failure, or the script's last lines. */
export function scriptFailure(target: Target, result: ProcessResult, what: string, hint: string): HomecloudError {
  return new HomecloudError(
    result.status === 255 ? describeSshFailure(target, result.stderr) : `${what} failed: ${result.stderr.trim().split('\n').slice(-5).join('\n')}`,
    undefined,
    hint,
  );
}
