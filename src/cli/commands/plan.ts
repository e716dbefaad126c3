import { planMachine } from '../../apply/deploy.ts';
import { colors, exitStatus } from '../../report/output.ts';
import { acrossBuiltMachines } from '../machines.ts';
import type { GlobalOptions } from '../main.ts';

/** What a deploy would do, machine by machine, without changing anything. */
export async function run(names: string[], options: GlobalOptions): Promise<number> {
  const { outcomes } = await acrossBuiltMachines(options, names, (target, { repo }) => planMachine(repo, target));
  const plans = outcomes.map(({ machine, value, error }) => ({ machine, error, plan: value?.plan, install: value?.install, purge: value?.purge }));
  if (options.json) {
    process.stdout.write(JSON.stringify({ machines: plans.map((p) => ({ ...p, error: p.error?.toString() })) }) + '\n');
    return plans.some((p) => p.error) ? exitStatus.machineFailed : exitStatus.ok;
  }
  const lines: string[] = [];
  for (const p of plans) {
    if (p.error) {
      lines.push(`${colors.bold(p.machine)}: ${colors.red('cannot plan')}: ${p.error.message}`);
      continue;
    }
    const plan = p.plan!;
    const nothing = plan.added.length + plan.changed.length + plan.removed.length + p.install!.length + p.purge!.length + plan.units.length === 0;
    lines.push(`${colors.bold(p.machine)}: ${nothing ? 'nothing to do' : `${plan.added.length} added, ${plan.changed.length} changed, ${plan.removed.length} removed`}`);
    for (const path of plan.added) lines.push(`  ${colors.green('+')} ${path}`);
    for (const path of plan.changed) lines.push(`  ${colors.yellow('~')} ${path}`);
    for (const path of plan.removed) lines.push(`  ${colors.red('-')} ${path}`);
    if (p.install!.length) lines.push(`  install packages: ${p.install!.join(' ')}`);
    if (p.purge!.length) lines.push(`  purge packages: ${p.purge!.join(' ')}`);
    if (plan.daemonReload) lines.push('  systemctl daemon-reload');
    for (const unit of plan.units) lines.push(`  ${unit.unit} ${unit.action}: ${unit.reasons.join('; ')}`);
  }
  process.stdout.write(lines.join('\n') + '\n');
  return plans.some((p) => p.error) ? exitStatus.machineFailed : exitStatus.ok;
}
