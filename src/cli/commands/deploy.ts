import pLimit from 'p-limit';
import { deployMachine, fetchGeneration, listGenerations, type DeployResult } from '../../apply/deploy.ts';
import { Builder } from '../../build/builder.ts';
import { inventoryEntry, loadModel, sandboxProblem } from '../../load/model.ts';
import { colors, exitStatus, milliseconds } from '../../report/output.ts';
import { repoFrom } from '../context.ts';
import type { GlobalOptions } from '../main.ts';

export async function run(names: string[], options: GlobalOptions & { rollbackOnFailure?: boolean }): Promise<number> {
  const repo = repoFrom(options);
  const report = await new Builder(repo).build({ machines: names });
  const model = await loadModel(repo);
  const limit = pLimit(model.settings.jobs);
  const width = Math.max(...report.machines.map((m) => m.machine.length));
  const results = await Promise.all(
    report.machines.map((built) =>
      limit(async (): Promise<DeployResult> => {
        if (built.status === 'failed') return { machine: built.machine, status: 'failed', error: built.error, milliseconds: 0 };
        const problem = sandboxProblem(model, built.machine);
        if (problem) return { machine: built.machine, status: 'failed', error: problem, milliseconds: 0 };
        const target = { machine: built.machine, entry: inventoryEntry(model, built.machine) };
        const result = await deployMachine(repo, target, { keep: model.settings.generations });
        if (result.status === 'failed' && options.rollbackOnFailure && result.details !== undefined) await rollBack(repo, target, model.settings.generations, result);
        if (!options.json) process.stdout.write(`${result.machine.padEnd(width)}  ${describe(result)}\n`);
        return result;
      }),
    ),
  );
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
