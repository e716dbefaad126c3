import pLimit from 'p-limit';
import { reachableTarget } from '../../transport/host-key.ts';
import { Builder, type MachineSurvey } from '../../build/builder.ts';
import { readFleetPublic } from '../../facts/public.ts';
import { inventoryEntry, loadModel, selectMachines, type Model } from '../../load/model.ts';
import { readLayerSelections } from '../../load/layers.ts';
import { shownName } from '../../load/names.ts';
import { HomecloudError, errorJson, isHomecloudError } from '../../load/errors.ts';
import { machinesByKey, networkProblem, networkScript, networkText, parseNetwork, printable, type NetworkRow } from '../../report/network.ts';
import { colors, exitStatus, printMachineError, table } from '../../report/output.ts';
import { describeSshFailure, runScript, type Target } from '../../transport/ssh.ts';
import { jobsFor, repoFrom } from '../context.ts';
import type { GlobalOptions } from '../options.ts';

export async function run(args: string[], options: GlobalOptions & { network?: boolean }): Promise<number> {
  if (options.network) return network(args, options);
  if (args.length) throw new HomecloudError('ls names machines only with --network', undefined, `e.g. homecloud ls --network ${args[0]}`);
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

/**
 * `ls --network`: each machine on the overlay or dns layer, read in one round trip (networkScript): its
 * WireGuard interface and peers (named by the keys machines published), and the names its resolver serves.
 */
async function network(names: string[], options: GlobalOptions): Promise<number> {
  const repo = repoFrom(options);
  const model = await loadModel(repo);
  const machines = selectMachines(model, names);
  const keys = machinesByKey(readFleetPublic(repo).items.get('wireguard'));
  const limit = pLimit(jobsFor(options, model));
  const rows = await Promise.all(
    machines.map((machine) =>
      limit(async (): Promise<{ row: NetworkRow; error?: HomecloudError }> => {
        const failed = (error: HomecloudError) => ({ row: { machine, failed: true as const }, error: error.of(machine, 'connect') });
        let layers: string[];
        try {
          layers = readLayerSelections(repo, machine).map((selection) => selection.name);
        } catch (error) {
          if (!isHomecloudError(error)) throw error;
          return { row: { machine, failed: true }, error: error.of(machine, 'build') };
        }
        const overlay = layers.includes('overlay');
        const dns = layers.includes('dns');
        if (!overlay && !dns) return { row: { machine, skipped: true } };
        let target: Target;
        try {
          target = await reachableTarget(model, machine);
        } catch (error) {
          if (!isHomecloudError(error)) throw error;
          return failed(error);
        }
        const result = await runScript(target, networkScript);
        if (result.status === 255) return failed(new HomecloudError(printable(describeSshFailure(target, result.stderr), 400)));
        if (result.status !== 0)
          return failed(new HomecloudError(`reading its network failed: exit status ${result.status}`, undefined, printable(result.stderr) || undefined));
        const read = parseNetwork(result.stdout, { machine, keys, overlay, dns, now: Math.floor(Date.now() / 1000) });
        const problem = networkProblem(read);
        const error = problem && new HomecloudError(problem.message, undefined, problem.hint).of(machine, 'probe');
        return { row: { machine, network: read, overlay, dns }, error };
      }),
    ),
  );
  if (options.json) {
    const shown = rows.map(({ row, error }) => {
      const read = 'network' in row ? row.network : undefined;
      return {
        machine: row.machine,
        ...('skipped' in row ? { skipped: 'not on the overlay' } : {}),
        interface: read?.interface ?? null,
        peers: read?.peers ?? [],
        names: read?.names ?? [],
        ...(error ? { error: errorJson(error) } : {}),
      };
    });
    process.stdout.write(JSON.stringify({ machines: shown }) + '\n');
  } else {
    const text = networkText(
      rows.map(({ row }) => row),
      colors,
    );
    if (text) process.stdout.write(text + '\n');
    for (const { row, error } of rows) if (error) printMachineError(row.machine, error);
  }
  return rows.some(({ error }) => error) ? exitStatus.machineFailed : exitStatus.ok;
}
