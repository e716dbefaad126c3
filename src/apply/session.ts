import { hostname, userInfo } from 'node:os';
import { probeScriptFor, readProbe, type ProbeOutcome } from '../facts/probe.ts';
import { HomecloudError } from '../load/errors.ts';
import type { RepoPaths } from '../load/repo.ts';
import { describeSshFailure, openSession, shellQuote, type RemoteResult, type RemoteSession, type Target } from '../transport/ssh.ts';
import { lockDir, lockHolder, machineLock, stateDir } from './target-paths.ts';

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
  run(script: string, onLine?: (line: string) => void): Promise<RemoteResult>;
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
  const session = openSession(target, script, { signal: options.signal });
  let waited: LockHolder | undefined;
  for (;;) {
    const line = await session.nextLine();
    if (line === undefined) {
      const ended = await session.done;
      throw new HomecloudError(lockFailure(target, ended, waited, options.waitSeconds), { file: target.machine }, waited ? 'deploy again once it has ended, or wait longer with --wait SECONDS' : undefined);
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
      throw new HomecloudError(lockFailure(target, undefined, waited, options.waitSeconds), { file: target.machine }, 'deploy again once it has ended, or wait longer with --wait SECONDS');
    }
  }
  const lines: string[] = [];
  for (let line = await session.nextLine(); line !== 'probed'; line = await session.nextLine()) {
    if (line === undefined) {
      const ended = await session.done;
      throw new HomecloudError(describeSshFailure(target, ended.stderr), { file: target.machine });
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
      return { status: ended.status, stdout: [...out, ended.stdout].join('\n'), stderr: ended.stderr };
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

/**
 * The remote side of a lock: take the lock (fd 9), saying who holds it while
 * waiting; run the probe; then wait for one `run <bytes>` command, whose
 * script runs detached and inherits the lock. End of input lets go.
 */
export function lockScript(holder: string, waitSeconds: number, probe: string): string {
  return `set -u
[ -d ${lockDir} ] || mkdir -m 0700 ${lockDir}
exec 9>>${machineLock}
if ! flock -n 9; then
  printf 'waiting %s\\n' "$(head -c 300 ${lockHolder} 2>/dev/null | tr -cd '[:alnum:]=:._@ -')"
  flock -w ${Math.max(0, Math.round(waitSeconds))} 9 || { echo lock-timeout; exit 75; }
fi
printf '%s\\n' ${shellQuote(holder)} > ${lockHolder}
echo locked
( ${probe} ) < /dev/null
echo probed
IFS=' ' read -r command bytes || exit 0
[ "$command" = run ] || exit 0
mkdir -p ${stateDir}
head -c "$bytes" > ${stateDir}/run.sh
out=${stateDir}/apply.out err=${stateDir}/apply.err
: > "$out"; : > "$err"
# setsid: a cut connection or a Ctrl-C where the deploy runs never stops the run halfway; it inherits the lock (fd 9).
setsid bash ${stateDir}/run.sh >> "$out" 2>> "$err" < /dev/null &
pid=$!
tail -s 0.02 -n +1 -f --pid="$pid" "$out" || true
status=0
wait "$pid" || status=$?
cat "$err" >&2
exit "$status"
`;
}

function parseHolder(text: string): LockHolder | undefined {
  const fields = Object.fromEntries(text.split(' ').map((pair) => pair.split('=')).filter((pair) => pair.length === 2)) as Record<string, string>;
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

function lockFailure(target: Target, ended: RemoteResult | undefined, waited: LockHolder | undefined, seconds: number): string {
  if (ended && ended.status === 255) return describeSshFailure(target, ended.stderr);
  if (waited || !ended) return `${describeHolder(waited)} still holds ${target.machine} after ${seconds} s: gave up waiting`;
  return `cannot take the lock of ${target.machine}: ${ended.stderr.trim().split('\n').pop() ?? `exit status ${ended.status}`}`;
}
