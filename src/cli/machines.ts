import pLimit from 'p-limit';
import { Builder, type MachineResult } from '../build/builder.ts';
import { machineFailure, type HomecloudError } from '../load/errors.ts';
import { targetOf, reachProblem, type Model } from '../load/model.ts';
import type { RepoPaths } from '../load/repo.ts';
import type { Target } from '../transport/transport.ts';
import { jobsFor, repoFrom } from './context.ts';
import type { GlobalOptions } from './main.ts';

export interface MachineOutcome<T> {
  machine: string;
  value?: T;
  error?: HomecloudError;
}

/**
 * Build the named machines (all when none is named), then do `work` on each
 * that built and can be reached, all at once up to the `jobs` setting. A
 * machine that fails never holds up the others.
 */
export async function acrossBuiltMachines<T>(
  options: GlobalOptions,
  names: string[],
  work: (target: Target, context: { repo: RepoPaths; model: Model }) => Promise<T>,
  /** Hears the machines once they are built, before any work starts: the ones whose build failed come with its error. */
  onBuilt?: (machines: MachineOutcome<never>[]) => void,
  /** Which built machines to work on: all of them unless this says otherwise. */
  keep: (built: MachineResult) => boolean = () => true,
): Promise<{ repo: RepoPaths; model: Model; outcomes: MachineOutcome<T>[] }> {
  const repo = repoFrom(options);
  const report = await new Builder(repo).build({ machines: names });
  const { model } = report;
  report.machines = report.machines.filter(keep);
  onBuilt?.(
    report.machines.map((built) => ({ machine: built.machine, error: built.status === 'failed' ? built.error?.of(built.machine, 'build') : undefined })),
  );
  const limit = pLimit(jobsFor(options, model));
  const outcomes = await Promise.all(
    report.machines.map((built) =>
      limit(async (): Promise<MachineOutcome<T>> => {
        const machine = built.machine;
        if (built.status === 'failed') return { machine, error: built.error?.of(machine, 'build') };
        const problem = reachProblem(model, machine);
        if (problem) return { machine, error: problem.of(machine, 'connect') };
        try {
          return { machine, value: await work(targetOf(model, machine), { repo, model }) };
        } catch (error) {
          // Only the machine's failure is its own: a bug ends the command.
          return { machine, error: machineFailure(error, machine) };
        }
      }),
    ),
  );
  return { repo, model, outcomes };
}
