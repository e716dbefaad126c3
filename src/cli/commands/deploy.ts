import { deployMachine, fetchGeneration, listGenerations, type DeployResult } from '../../apply/deploy.ts';
import { colors, exitStatus, milliseconds } from '../../report/output.ts';
import { acrossBuiltMachines } from '../machines.ts';
import type { GlobalOptions } from '../main.ts';

export async function run(names: string[], options: GlobalOptions & { rollbackOnFailure?: boolean }): Promise<number> {
  const width = Math.max(...names.map((name) => name.length), 8);
  const { outcomes } = await acrossBuiltMachines(options, names, async (target, { repo, model }) => {
    const result = await deployMachine(repo, target, { keep: model.settings.generations });
    if (result.status === 'failed' && options.rollbackOnFailure && result.details !== undefined) await rollBack(repo, target, model.settings.generations, result);
    // Text: a line per machine as it finishes. JSON: the same as NDJSON events, then a summary.
    process.stdout.write(options.json ? `${JSON.stringify(event(result))}\n` : `${result.machine.padEnd(width)}  ${describe(result)}\n`);
    return result;
  });
  // Machines that never got to deploying (their build failed, or the sandbox lacks them) were not reported yet.
  const unreported: DeployResult[] = outcomes.filter((o) => !o.value).map(({ machine, error }) => ({ machine, status: 'failed', error, milliseconds: 0 }));
  const results: DeployResult[] = [...outcomes.flatMap((o) => (o.value ? [o.value] : [])), ...unreported];
  const failed = results.filter((r) => r.status === 'failed');
  if (options.json) {
    for (const result of unreported) process.stdout.write(`${JSON.stringify(event(result))}\n`);
    const count = (status: DeployResult['status']) => results.filter((r) => r.status === status).length;
    process.stdout.write(`${JSON.stringify({ event: 'summary', deployed: count('deployed'), unchanged: count('unchanged'), failed: count('failed') })}\n`);
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

function event(result: DeployResult) {
  return {
    event: result.status,
    machine: result.machine,
    generation: result.generation,
    milliseconds: result.milliseconds,
    plan: result.plan,
    error: result.error?.toString(),
    details: result.details,
    rollback: result.rollback,
  };
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
