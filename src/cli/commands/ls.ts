import { Builder, type MachineSurvey } from '../../build/builder.ts';
import { inventoryEntry, type Model } from '../../load/model.ts';
import { shownName } from '../../load/names.ts';
import { errorJson } from '../../load/errors.ts';
import { colors, exitStatus, printMachineError, table } from '../../report/output.ts';
import { repoFrom } from '../context.ts';
import type { GlobalOptions } from '../main.ts';

export async function run(_args: string[], options: GlobalOptions): Promise<number> {
  const { model, machines } = await new Builder(repoFrom(options)).survey();
  if (options.json) {
    const rows = machines.map((m) => ({
      ...m,
      address: address(model, m.machine),
      ...(model.hosted.has(m.machine) ? { host: model.hosted.get(m.machine)!.host } : {}),
      error: m.error && errorJson(m.error.of(m.machine, 'build')),
    }));
    process.stdout.write(JSON.stringify({ machines: rows }) + '\n');
  } else if (machines.length === 0) {
    process.stdout.write('No machines: create machines/<name>/ or add an entry to inventory.json.\n');
  } else {
    const rows = underTheirHosts(model, machines).map(({ survey: m, depth }) => [
      '  '.repeat(depth) + shownName(m.machine),
      address(model, m.machine),
      m.layers.length ? m.layers.join(' ') : colors.dim('(only _)'),
      String(m.files),
      m.state === 'broken' ? colors.red(m.state) : m.state,
    ]);
    process.stdout.write(table(rows, ['MACHINE', 'ADDRESS', 'LAYERS', 'FILES', 'BUILD']) + '\n');
    for (const m of machines) if (m.error) printMachineError(m.machine, m.error);
  }
  return machines.some((m) => m.error) ? exitStatus.machineFailed : exitStatus.ok;
}

/** Where ssh reaches a machine; a machine reached through another (its host, a "via") says through which. */
function address(model: Model, machine: string): string {
  const entry = inventoryEntry(model, machine);
  return shownName(`${entry.user}@${entry.host}`) + (entry.via === undefined ? '' : ` via ${shownName(entry.via)}`);
}

/** The machines in order, each one a machine hosts (a container) indented under its host. */
function underTheirHosts(model: Model, machines: MachineSurvey[]): { survey: MachineSurvey; depth: number }[] {
  const listed = new Map(machines.map((survey) => [survey.machine, survey]));
  const hostOf = (machine: string) => {
    const host = model.hosted.get(machine)?.host;
    return host !== undefined && listed.has(host) ? host : undefined;
  };
  const rows: { survey: MachineSurvey; depth: number }[] = [];
  const shown = new Set<string>();
  const add = (survey: MachineSurvey, depth: number) => {
    if (shown.has(survey.machine)) return;
    shown.add(survey.machine);
    rows.push({ survey, depth });
    for (const hosted of machines) if (hostOf(hosted.machine) === survey.machine) add(hosted, depth + 1);
  };
  for (const survey of machines) if (hostOf(survey.machine) === undefined) add(survey, 0);
  // Machines that host each other (reaching them fails): listed all the same.
  for (const survey of machines) add(survey, 0);
  return rows;
}
