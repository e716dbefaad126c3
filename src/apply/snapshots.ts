import { HomecloudError } from '../load/errors.ts';
import type { RepoPaths } from '../load/repo.ts';
import { runScript, describeSshFailure } from '../transport/ssh.ts';
import type { Target } from '../transport/transport.ts';
import { shellQuote } from '../util/quote.ts';
import { scriptFailure, underLock } from './session.ts';

/**
 * The snapshots layer's snapshots on a machine (`homecloud snapshots`, `homecloud restore`): listed and put
 * back by the layer's own script, /usr/local/libexec/homecloud/snapshot, with each declaration's settings as
 * its generator wrote them. What the script prints comes from the machine: each line is taken only when it
 * matches its pattern.
 */
const script = '/usr/local/libexec/homecloud/snapshot';
const settingsDir = '/usr/local/etc/homecloud/snapshots';
const namePattern = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$/;
const stampPattern = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

export interface Snapshot {
  /** The declaration's name. */
  name: string;
  /** Its name on the machine: the time it was taken, UTC (20261202T043120Z). */
  stamp: string;
  /** The same time, ISO 8601. */
  time: string;
  /** Its exclusive size in bytes where btrfs quotas tell it; else null. */
  bytes: number | null;
  /** Whether it was sent to the declaration's SEND_TO machine. */
  sent: boolean;
}

/** The ISO time of a snapshot's name, or undefined when it is not one. */
export function stampTime(stamp: string): string | undefined {
  const match = stampPattern.exec(stamp);
  if (!match) return undefined;
  const [, year, month, day, hour, minute, second] = match;
  const time = `${year}-${month}-${day}T${hour}:${minute}:${second}Z`;
  return Number.isNaN(Date.parse(time)) ? undefined : time;
}

/** The `snapshot<TAB>name<TAB>stamp<TAB>bytes|-<TAB>yes|no` lines of the script's list, in order; other lines are ignored. */
export function parseSnapshots(stdout: string): Snapshot[] {
  const snapshots: Snapshot[] = [];
  for (const line of stdout.split('\n')) {
    const fields = line.split('\t');
    if (fields.length !== 5 || fields[0] !== 'snapshot') continue;
    const [, name, stamp, bytes, sent] = fields as [string, string, string, string, string];
    const time = stampTime(stamp);
    if (!namePattern.test(name) || !time || !/^(?:\d{1,20}|-)$/.test(bytes) || !/^(?:yes|no)$/.test(sent)) continue;
    snapshots.push({ name, stamp, time, bytes: bytes === '-' ? null : Number(bytes), sent: sent === 'yes' });
  }
  return snapshots;
}

/** The snapshot a restore takes: the newest at or before `at` (any time Date.parse reads, or a snapshot's name), else the newest. */
export function chooseSnapshot(snapshots: Snapshot[], machine: string, name: string, at?: string): Snapshot {
  const own = snapshots.filter((snapshot) => snapshot.name === name).sort((a, b) => (a.stamp < b.stamp ? -1 : 1));
  if (!own.length) throw new HomecloudError(`${machine} has no snapshot of ${name}`, undefined, `homecloud snapshots ${machine} lists them`);
  if (at === undefined) return own.at(-1)!;
  const limit = Date.parse(stampTime(at) ?? at);
  if (Number.isNaN(limit))
    throw new HomecloudError(
      `--at ${JSON.stringify(at)} is not a time`,
      undefined,
      'give a snapshot as listed (20261202T043120Z) or a time like 2026-12-02T04:31:20Z',
    );
  const chosen = own.filter((snapshot) => Date.parse(snapshot.time) <= limit).at(-1);
  if (!chosen) throw new HomecloudError(`${name} on ${machine} has no snapshot at or before ${at}`, undefined, `its oldest is ${own[0]!.time}`);
  return chosen;
}

/** A declaration name from the command line, checked before it goes into a script. */
function checkedName(name: string): string {
  if (!namePattern.test(name))
    throw new HomecloudError(`"${name}" is not a snapshot declaration's name`, undefined, 'the name of a /usr/local/opt/snapshots/<name>.conf');
  return name;
}

/** Every declaration's snapshots on the machine (or one declaration's). */
export async function listSnapshots(target: Target, name?: string): Promise<Snapshot[]> {
  const which = name === undefined ? `${settingsDir}/*.env` : shellQuote(`${settingsDir}/${checkedName(name)}.env`);
  const listing = `shopt -s nullglob
found=0
for settings in ${which}; do
  [[ -f $settings ]] || continue
  found=1
  declaration=\${settings##*/}
  ${script} list "\${declaration%.env}" "$settings"
done
if ((!found)); then echo "no-declarations"; fi`;
  const result = await runScript(target, listing);
  if (result.status === 255) throw new HomecloudError(describeSshFailure(target, result.stderr));
  if (result.status !== 0) throw new HomecloudError(`listing the snapshots failed: ${result.stderr.trim().split('\n').slice(-3).join('; ')}`);
  if (name !== undefined && result.stdout.includes('no-declarations')) {
    throw new HomecloudError(
      `${target.machine} declares no snapshots named ${name}`,
      undefined,
      `a /usr/local/opt/snapshots/${name}.conf of its tree, deployed`,
    );
  }
  return parseSnapshots(result.stdout);
}

export interface RestoreOptions {
  at?: string;
  waitSeconds: number;
  onWaiting?: (holder: string) => void;
}

export interface Restored {
  snapshot: Snapshot;
  /** The snapshot of the state before the restore: restoring it undoes this one. */
  undo: string;
}

/**
 * Put a snapshot back, under the machine's lock (no deploy meanwhile): the declaration's units stop, the
 * current state is snapshotted, a writable snapshot of the chosen one takes its place, the units start.
 */
export async function restoreSnapshot(repo: RepoPaths, target: Target, name: string, options: RestoreOptions): Promise<Restored> {
  return underLock(repo, target, 'restore', options, async (locked) => {
    const snapshot = chooseSnapshot(await listSnapshots(target, name), target.machine, name, options.at);
    const result = await locked.run(
      `${script} restore ${shellQuote(checkedName(name))} ${shellQuote(`${settingsDir}/${name}.env`)} ${shellQuote(snapshot.stamp)}`,
    );
    const done = /^restored\t[^\t]+\t[^\t]+\t(\d{8}T\d{6}Z)$/m.exec(result.stdout);
    if (result.status !== 0 || !done)
      throw scriptFailure(
        target,
        result,
        `the restore of ${name}`,
        'see journalctl on the machine; the state before the restore is kept as a snapshot when it got that far',
      );
    return { snapshot, undo: done[1]! };
  });
}
