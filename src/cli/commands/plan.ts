import { probeAndPlan } from '../../apply/deploy.ts';
import { hasWork, publicPlan } from '../../plan/deploy-plan.ts';
import { driftText } from '../../plan/live.ts';
import { errorJson } from '../../load/errors.ts';
import { colors, exitStatus, machineError } from '../../report/output.ts';
import { acrossBuiltMachines } from '../machines.ts';
import type { GlobalOptions } from '../options.ts';

/** What a deploy would do, machine by machine, without changing anything. */
export async function run(names: string[], options: GlobalOptions): Promise<number> {
  const { outcomes } = await acrossBuiltMachines(options, names, (target, { repo }) => probeAndPlan(repo, target));
  const plans = outcomes.map(({ machine, value, error }) => ({ machine, error, planned: value }));
  if (options.json) {
    const machines = plans.map(({ machine, error, planned }) => ({
      machine,
      error: error && errorJson(error),
      plan: planned && publicPlan(planned.plan),
      install: planned?.install,
      purge: planned?.purge,
      failedUnits: planned?.failedUnits,
    }));
    process.stdout.write(JSON.stringify({ machines }) + '\n');
    return plans.some((p) => p.error) ? exitStatus.machineFailed : exitStatus.ok;
  }
  const lines: string[] = [];
  for (const { machine, error, planned } of plans) {
    if (error || !planned) {
      lines.push(`${colors.red('cannot plan')} ${machineError(machine, error)}`);
      continue;
    }
    const { plan, install, purge } = planned;
    const nothing = !hasWork(plan, { install, purge });
    lines.push(
      `${colors.bold(machine)}: ${nothing ? 'nothing to do' : `${plan.added.length} added, ${plan.changed.length} changed, ${plan.removed.length} removed`}`,
    );
    if (plan.redo) lines.push(`  ${colors.yellow('the last apply did not commit: its changes and restarts are done again')}`);
    if (plan.bootstrap.length)
      lines.push(`  bootstrap: install ${plan.bootstrap.join(' ')} through apt before the transfer (the machine has none; deploy does it)`);
    for (const path of plan.added) lines.push(`  ${colors.green('+')} ${path}`);
    for (const path of plan.changed) lines.push(`  ${colors.yellow('~')} ${path}`);
    for (const path of plan.removed) lines.push(`  ${colors.red('-')} ${path}`);
    for (const drift of plan.drift) lines.push(`  ${colors.yellow('!')} ${driftText(drift)}`);
    if (install.length) lines.push(`  install packages: ${install.join(' ')}`);
    if (purge.length) lines.push(`  purge packages: ${purge.join(' ')}`);
    if (plan.daemonReload) lines.push('  systemctl daemon-reload');
    if (plan.hook) lines.push(`  run hook: ${plan.hook.path} (${plan.hook.reason === 'present' ? 'present: every apply runs it' : plan.hook.reason})`);
    for (const unit of plan.units) lines.push(`  ${unit.unit} ${unit.action}: ${unit.reasons.join('; ')}`);
    for (const unit of planned.failedUnits) lines.push(`  ${colors.red(`${unit} is failed`)} (a unit this machine's generation manages)`);
  }
  process.stdout.write(lines.join('\n') + '\n');
  return plans.some((p) => p.error) ? exitStatus.machineFailed : exitStatus.ok;
}
