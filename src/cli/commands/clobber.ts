import { clobber } from '../../apply/clobber.ts';
import { reachableTarget } from '../../transport/host-key.ts';
import { HomecloudError } from '../../load/errors.ts';
import { loadModel, selectMachines } from '../../load/model.ts';
import { nameArgument } from '../../load/names.ts';
import { exitStatus } from '../../report/output.ts';
import { repoFrom, waitSeconds } from '../context.ts';
import type { GlobalOptions } from '../options.ts';

export async function run([machine]: string[], options: GlobalOptions & { yes?: boolean; wait?: string }): Promise<number> {
  if (!options.yes) {
    throw new HomecloudError(
      `clobber removes everything homecloud placed on ${machine} and stops its units`,
      undefined,
      `if that is what you want: homecloud clobber --yes ${nameArgument(machine!)}`,
    );
  }
  const repo = repoFrom(options);
  const model = await loadModel(repo);
  selectMachines(model, [machine!]);
  const { removed, units } = await clobber(repo, await reachableTarget(model, machine!), {
    waitSeconds: waitSeconds(options),
    onWaiting: (holder) => process.stderr.write(`${machine}: waiting for ${holder}\n`),
  });
  process.stdout.write(
    options.json
      ? JSON.stringify({ machine, removed, stopped: units }) + '\n'
      : `${machine}: removed ${removed} paths${units.length ? `, stopped ${units.join(' ')}` : ''}; what was there before homecloud is back\n`,
  );
  return exitStatus.ok;
}
