import pLimit from 'p-limit';
import { Builder, type MachineResult } from '../build/builder.ts';
import { HomecloudError, machineFailure } from '../load/errors.ts';
import { hostsWithin } from '../load/hosted.ts';
import { hostOf, reachProblem, type Model } from '../load/model.ts';
import { shownName } from '../load/names.ts';
import type { RepoPaths } from '../load/repo.ts';
import { readyTarget } from '../transport/host-key.ts';
import type { Target } from '../transport/transport.ts';
import { jobsFor, repoFrom } from './context.ts';
import type { GlobalOptions } from './options.ts';

export interface MachineOutcome<T> {
  machine: string;
  value?: T;
  error?: HomecloudError;
}

export interface AcrossOptions<T> {
  /** Hears the machines once they are built, before any work starts: the ones whose build failed come with its error. */
  onBuilt?: (machines: MachineOutcome<never>[]) => void;
  /** Which built machines to work on: all of them unless this says otherwise. */
  keep?: (built: MachineResult) => boolean;
  /**
   * Work on a hosted machine only once the work on its host (among the machines) is done, and only when it
   * succeeded by this (deploy: a host's deploy may make or start its containers).
   */
  hostsFirst?: (value: T) => boolean;
}

/**
 * Build the named machines (all when none is named) and their hosts, then do
 * `work` on each named one that built and can be reached, all at once up to
 * the `jobs` setting. A machine that fails never holds up the others.
 */
export async function acrossBuiltMachines<T>(
  options: GlobalOptions,
  names: string[],
  work: (target: Target, context: { repo: RepoPaths; model: Model }) => Promise<T>,
  { onBuilt, keep = () => true, hostsFirst }: AcrossOptions<T> = {},
): Promise<{ repo: RepoPaths; model: Model; outcomes: MachineOutcome<T>[] }> {
  const repo = repoFrom(options);
  // The hosts too: their build records say how the machines they host are reached.
  const report = await new Builder(repo).build({ machines: names, withHosts: true });
  const { model } = report;
  report.machines = report.machines.filter((built) => (names.length === 0 || names.includes(built.machine)) && keep(built));
  onBuilt?.(
    report.machines.map((built) => ({ machine: built.machine, error: built.status === 'failed' ? built.error?.of(built.machine, 'build') : undefined })),
  );
  const limit = pLimit(jobsFor(options, model));
  const waits = hostsFirst
    ? hostsWithin(
        report.machines.map((built) => built.machine),
        (machine) => hostOf(model, machine)?.host,
      )
    : new Map<string, string>();
  const outcomes = new Map<string, Promise<MachineOutcome<T>>>();
  const workOn = async (built: MachineResult): Promise<MachineOutcome<T>> => {
    const machine = built.machine;
    if (built.status === 'failed') return { machine, error: built.error?.of(machine, 'build') };
    const problem = reachProblem(model, machine);
    if (problem) return { machine, error: problem.of(machine, 'connect') };
    // Waiting holds no place among the `jobs`: a host waited for must get one.
    const host = waits.get(machine);
    const hosted = host === undefined ? undefined : await outcomes.get(host);
    if (hosted && (hosted.error || !hostsFirst!(hosted.value!))) return { machine, error: hostFailed(machine, host!) };
    return limit(async () => {
      let target: Target;
      try {
        target = await readyTarget(model, machine);
      } catch (error) {
        return { machine, error: machineFailure(error, machine, 'connect') };
      }
      try {
        return { machine, value: await work(target, { repo, model }) };
      } catch (error) {
        // Only the machine's failure is its own: a bug ends the command.
        return { machine, error: machineFailure(error, machine) };
      }
    });
  };
  // Each starts in a later microtask: every promise is in the map before any work looks its host up in it.
  const start = (built: MachineResult) => Promise.resolve().then(() => workOn(built));
  for (const built of report.machines) outcomes.set(built.machine, start(built));
  return { repo, model, outcomes: await Promise.all(report.machines.map((built) => outcomes.get(built.machine)!)) };
}

/** A hosted machine is not tried when the work on its host failed (its container may not be there, or be stale). */
function hostFailed(machine: string, host: string): HomecloudError {
  return new HomecloudError(`its host ${shownName(host)} failed`, undefined, 'it was not tried: deploy again once its host deploys').of(machine, 'connect');
}
