import { recoverCluster } from '../../apply/pitr.ts';
import { listSnapshots, restoreSnapshot } from '../../apply/snapshots.ts';
import { nameArgument } from '../../load/names.ts';
import { colors, exitStatus, milliseconds, table } from '../../report/output.ts';
import { waitSeconds } from '../context.ts';
import type { GlobalOptions } from '../options.ts';
import { machineTarget } from '../machine-target.ts';

/** `homecloud snapshots MACHINE [NAME]`: the snapshots the snapshots layer keeps there. */
export async function list([machine, name]: string[], options: GlobalOptions): Promise<number> {
  const { target } = await machineTarget(machine!, options);
  const snapshots = await listSnapshots(target, name);
  if (options.json) process.stdout.write(JSON.stringify({ machine, snapshots }) + '\n');
  else if (!snapshots.length) process.stdout.write(`${machine} has no snapshots${name ? ` of ${name}` : ''} yet\n`);
  else
    process.stdout.write(
      table(
        snapshots.map((s) => [
          s.name,
          s.stamp,
          s.time,
          s.bytes === null ? colors.dim('-') : `${(s.bytes / 1024 / 1024).toFixed(1)} MiB`,
          s.sent ? 'sent' : colors.dim('not sent'),
        ]),
        ['NAME', 'SNAPSHOT', 'TAKEN', 'SIZE', 'SENT'],
      ) + '\n',
    );
  return exitStatus.ok;
}

/** `homecloud restore MACHINE NAME [--at TIME]`: put a snapshot back, the state before it kept as a snapshot. */
export async function restore([machine, name]: string[], options: GlobalOptions & { at?: string; wait?: string; pitr?: boolean }): Promise<number> {
  const { repo, target } = await machineTarget(machine!, options);
  const started = Date.now();
  const restoreOptions = {
    ...(options.at !== undefined ? { at: options.at } : {}),
    waitSeconds: waitSeconds(options),
    onWaiting: (holder: string) => process.stderr.write(`${machine}: waiting for ${holder}\n`),
  };
  if (options.pitr) {
    const recovered = await recoverCluster(repo, target, name!, restoreOptions);
    if (options.json) process.stdout.write(JSON.stringify({ machine, name, recovered: recovered.time, aside: recovered.aside }) + '\n');
    else
      process.stdout.write(
        `${machine}: the cluster ${recovered.cluster} is back as of ${recovered.time} (${milliseconds(Date.now() - started)}); as it was before, it is kept in ${recovered.aside}\n`,
      );
    return exitStatus.ok;
  }
  const restored = await restoreSnapshot(repo, target, name!, restoreOptions);
  if (options.json) process.stdout.write(JSON.stringify({ machine, name, restored: restored.snapshot, undo: restored.undo }) + '\n');
  else
    process.stdout.write(
      `${machine}: ${name} is back as of ${restored.snapshot.time} (${milliseconds(Date.now() - started)}); the state before is snapshot ${restored.undo}: homecloud restore ${nameArgument(machine!)} ${name} --at ${restored.undo} undoes it\n`,
    );
  return exitStatus.ok;
}
