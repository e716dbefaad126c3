import { existsSync } from 'node:fs';
import pLimit from 'p-limit';
import { jobsFor } from '../context.ts';
import { probe } from '../../facts/probe.ts';
import { probeCachePath, readProbeFacts } from '../../facts/probe-cache.ts';
import { inventoryEntry, loadModel, reachProblem, selectMachines } from '../../load/model.ts';
import { errorJson, machineFailure } from '../../load/errors.ts';
import { readyTarget } from '../../transport/host-key.ts';
import type { Target } from '../../transport/transport.ts';
import { colors, exitStatus, milliseconds, printMachineError, table } from '../../report/output.ts';
import { repoFrom } from '../context.ts';
import type { GlobalOptions } from '../options.ts';

export async function run(names: string[], options: GlobalOptions & { refresh?: boolean }): Promise<number> {
  const repo = repoFrom(options);
  const model = await loadModel(repo);
  const machines = selectMachines(model, names);
  const limit = pLimit(jobsFor(options, model));
  const outcomes = await Promise.all(
    machines.map((machine) =>
      limit(async () => {
        const error = reachProblem(model, machine);
        if (error) return { machine, error, cached: false, milliseconds: 0 };
        const entry = inventoryEntry(model, machine);
        const cached = !options.refresh && existsSync(probeCachePath(repo, machine)) ? readProbeFacts(repo, machine, entry) : undefined;
        if (cached) return { machine, facts: Object.fromEntries(cached.map((f) => [f.key, f.value])), cached: true, milliseconds: 0 };
        let target: Target;
        try {
          // Through its "via" or its host, as every command reaches it.
          target = await readyTarget(model, machine);
        } catch (failure) {
          return { machine, error: machineFailure(failure, machine, 'connect'), cached: false, milliseconds: 0 };
        }
        return { ...(await probe(repo, target)), cached: false };
      }),
    ),
  );
  if (options.json) {
    process.stdout.write(
      JSON.stringify({
        machines: outcomes.map((o) => ({
          machine: o.machine,
          cached: o.cached,
          facts: o.facts,
          error: 'error' in o && o.error ? errorJson(o.error.of(o.machine, 'probe')) : undefined,
        })),
      }) + '\n',
    );
  } else {
    const rows = outcomes.map((o) => {
      const error = 'error' in o ? o.error : undefined;
      if (error) return [o.machine, colors.red('failed'), ''];
      const f = o.facts ?? {};
      return [
        o.machine,
        o.cached ? 'cached' : `probed (${milliseconds(o.milliseconds)})`,
        `${f.ENV_HOSTNAME ?? ''} ${f.ENV_ID ?? ''} ${f.ENV_VERSION_ID ?? ''}, ${f.ENV_NPROC ?? '?'} CPUs`,
      ];
    });
    process.stdout.write(table(rows, ['MACHINE', 'FACTS', 'SUMMARY']) + '\n');
    for (const o of outcomes) if ('error' in o && o.error) printMachineError(o.machine, o.error);
  }
  return outcomes.some((o) => 'error' in o && o.error) ? exitStatus.machineFailed : exitStatus.ok;
}
