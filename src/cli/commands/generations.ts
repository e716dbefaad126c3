import { deployMachine, fetchGeneration, listGenerations, type Generation } from '../../apply/deploy.ts';
import { HomecloudError } from '../../load/errors.ts';
import { nameArgument } from '../../load/names.ts';
import { colors, exitStatus, milliseconds, printMachineError, table } from '../../report/output.ts';
import { waitSeconds } from '../context.ts';
import type { GlobalOptions } from '../options.ts';
import { machineTarget } from '../machine-target.ts';

export async function list([machine]: string[], options: GlobalOptions): Promise<number> {
  const { target } = await machineTarget(machine!, options);
  const generations = await listGenerations(target);
  if (options.json) process.stdout.write(JSON.stringify({ machine, generations }) + '\n');
  else if (generations.length === 0) process.stdout.write(`${machine} has no generations: nothing was deployed to it yet\n`);
  else
    process.stdout.write(
      table(
        generations.map((g) => [String(g.generation), g.current ? colors.green('current') : '', g.meta.date ?? '', g.meta.by ?? '', g.meta.commit ?? '']),
        ['GENERATION', '', 'DEPLOYED', 'BY', 'COMMIT'],
      ) + '\n',
    );
  return exitStatus.ok;
}

/** Deploy an older generation again, with the same reconcile as any deploy. */
export async function rollback([machine]: string[], options: GlobalOptions & { to?: string; wait?: string }): Promise<number> {
  const { repo, model, target } = await machineTarget(machine!, options);
  // Which generation is "the one before the current" is decided again once the machine's lock is held: a deploy may commit meanwhile.
  const choose = (generations: Generation[]) => {
    const current = generations.find((g) => g.current)?.generation;
    const wanted = options.to !== undefined ? Number(options.to) : generations.filter((g) => current === undefined || g.generation < current).pop()?.generation;
    if (wanted === undefined || !generations.some((g) => g.generation === wanted)) {
      throw new HomecloudError(
        options.to !== undefined ? `${machine} has no generation ${options.to}` : `${machine} has no generation before the current one`,
        undefined,
        `its generations: ${generations.map((g) => g.generation).join(', ') || 'none'} (homecloud generations ${nameArgument(machine!)})`,
      );
    }
    return wanted;
  };
  let wanted = choose(await listGenerations(target));
  const result = await deployMachine(repo, target, {
    keep: model.settings.generations,
    command: 'rollback',
    waitSeconds: waitSeconds(options),
    desired: async () => {
      wanted = choose(await listGenerations(target));
      return fetchGeneration(repo, target, wanted);
    },
    onProgress: (progress) => {
      if (progress.phase === 'waiting') process.stderr.write(`${machine}: waiting for ${progress.holder}\n`);
    },
    commit: () => `rollback to generation ${wanted}`,
  });
  if (result.status === 'failed') {
    printMachineError(machine!, result.error, { doing: `rollback to generation ${wanted} failed`, after: [result.details] });
    return exitStatus.machineFailed;
  }
  const plan = result.plan!;
  process.stdout.write(
    result.status === 'unchanged'
      ? `${machine} already is as generation ${wanted}\n`
      : `${machine}: generation ${wanted} is back as generation ${result.generation}: ${plan.added.length} added, ${plan.changed.length} changed, ${plan.removed.length} removed${plan.units.length ? `; ${plan.units.map((u) => `${u.action} ${u.unit}`).join(', ')}` : ''} (${milliseconds(result.milliseconds)})\n`,
  );
  return exitStatus.ok;
}
