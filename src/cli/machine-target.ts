import { loadModel, selectMachines } from '../load/model.ts';
import { reachableTarget } from '../transport/host-key.ts';
import { repoFrom } from './context.ts';
import type { GlobalOptions } from './options.ts';

/** The repository, its model and one named machine, ready to work on (for the commands about one machine). */
export async function machineTarget(machine: string, options: GlobalOptions) {
  const repo = repoFrom(options);
  const model = await loadModel(repo);
  selectMachines(model, [machine]);
  return { repo, model, target: await reachableTarget(model, machine) };
}
