import { deployMachine, fetchGeneration, listGenerations, type DeployResult } from '../../apply/deploy.ts';
import { colors, exitStatus, milliseconds } from '../../report/output.ts';
import { acrossBuiltMachines } from '../machines.ts';
import type { GlobalOptions } from '../main.ts';

export async function run(names: string[], options: GlobalOptions & { rollbackOnFailure?: boolean }): Promise<number> {
  const width = Math.max(...names.map((name) => name.length), 8);
  const { outcomes } = await acrossBuiltMachines(options, names, async (target, { repo, model }) => {
    const result = await deployMachine(repo, target, { keep: model.settings.generations });
    if (result.status === 'failed' && options.rollbackOnFailure && result.details !== undefined) await rollBack(repo, target, model.settings.generations, result);
    if (!options.json) process.stdout.write(`${result.machine.padEnd(width)}  ${describe(result)}\n`);
    return result;
  });
  const results: DeployResult[] = outcomes.map(({ machine, value, error }) => value ?? { machine, status: 'failed', error, milliseconds: 0 });
  const failed = results.filter((r) => r.status === 'failed');
  if (options.json) {
    process.stdout.write(JSON.stringify({ machines: results.map((r) => ({ machine: r.machine, status: r.status, generation: r.generation, milliseconds: r.milliseconds, plan: r.plan, error: r.error?.toString(), rollback: r.rollback })) }) + '\n');
  } else {
    const deployed = results.filter((r) => r.status === 'deployed').length;
    process.stdout.write(
      failed.length
        ? colors.red(`${failed.length} of ${results.length} machines failed.\n`)
        : deployed
          ? `Deployed ${deployed} of ${results.length} machines; the rest had nothing to do.\n`
          : 'Nothing to do: every machine is as its tree says.\n',
    );
    for (const result of failed) {
      process.stderr.write(`${colors.red('error:')} ${result.machine}: ${result.error?.message ?? 'failed'}${result.error?.hint ? `\n  ${result.error.hint}` : ''}${result.rollback ? `\n  ${result.rollback}` : ''}\n`);
      if (result.details) process.stderr.write(`${result.details}\n`);
    }
  }
  return failed.length ? exitStatus.machineFailed : exitStatus.ok;
}

/** After a failed apply: deploy the current generation again, and say so in the result (the deploy still counts as failed). */
async function rollBack(repo: Parameters<typeof deployMachine>[0], target: Parameters<typeof deployMachine>[1], keep: number, result: DeployResult): Promise<void> {
  const current = (await listGenerations(target)).find((g) => g.current)?.generation;
  if (current === undefined) {
    result.rollback = 'there was no earlier generation to go back to';
    return;
  }
  const back = await deployMachine(repo, target, { keep, desired: await fetchGeneration(repo, target, current), commit: `rollback to generation ${current} after a failed deploy` });
  result.rollback = back.status === 'failed' ? `rolling back to generation ${current} failed too: ${back.error?.message}` : `rolled back to generation ${current}${back.generation ? ` (now generation ${back.generation})` : ''}`;
}

function describe(result: DeployResult): string {
  const plan = result.plan;
  switch (result.status) {
    case 'unchanged':
      return colors.dim(`nothing to do (${milliseconds(result.milliseconds)})`);
    case 'failed':
      return colors.red(result.rollback ? `failed; ${result.rollback}` : 'failed');
    case 'deployed': {
      const files = plan ? `${plan.added.length} added, ${plan.changed.length} changed, ${plan.removed.length} removed` : '';
      const units = plan?.units.length ? `; ${plan.units.map((u) => `${u.action} ${u.unit}`).join(', ')}` : '';
      return `${colors.green(`generation ${result.generation}`)}: ${files}${units} (${milliseconds(result.milliseconds)})`;
    }
  }
}
