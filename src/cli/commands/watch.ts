import { join } from 'node:path';
import { deployMachine } from '../../apply/deploy.ts';
import { Builder } from '../../build/builder.ts';
import { loadModel, reachProblem, selectMachines } from '../../load/model.ts';
import { machineFailure } from '../../load/errors.ts';
import { readyTarget } from '../../transport/host-key.ts';
import { exitStatus, milliseconds, printError, printMachineError } from '../../report/output.ts';
import { now } from '../../util/timing.ts';
import { watchTree } from '../../util/watch-tree.ts';
import { repoFrom } from '../context.ts';
import type { GlobalOptions } from '../options.ts';

/**
 * Keep a warm builder; on every save, rebuild what the change touches and
 * deploy the machines whose trees changed. Runs until interrupted.
 */
export async function run(names: string[], options: GlobalOptions): Promise<number> {
  const repo = repoFrom(options);
  const model = await loadModel(repo);
  const machines = selectMachines(model, names);
  for (const machine of machines) {
    const problem = reachProblem(model, machine);
    if (problem) throw problem;
  }
  const builder = new Builder(repo);
  const loop = async (changed?: string[]) => {
    const started = now();
    const report = await builder.build({ machines, changed, withHosts: true });
    const watched = report.machines.filter((m) => machines.includes(m.machine));
    for (const failed of watched.filter((m) => m.status === 'failed')) printMachineError(failed.machine, failed.error);
    const built = watched.filter((m) => m.status === 'built' || changed === undefined).map((m) => m.machine);
    const results = await Promise.all(
      built.map(async (machine) => {
        try {
          return await deployMachine(repo, await readyTarget(report.model, machine), { keep: model.settings.generations });
        } catch (error) {
          // A hosted machine whose host key cannot be read yet: this round fails it, the next one tries again.
          return { machine, status: 'failed' as const, error: machineFailure(error, machine, 'connect'), milliseconds: 0 };
        }
      }),
    );
    for (const result of results) if (result.status === 'failed') printMachineError(result.machine, result.error, { after: [result.details] });
    const deployed = results.filter((r) => r.status === 'deployed');
    const units = deployed.flatMap((r) => r.plan?.units.map((u) => `${r.machine}: ${u.action} ${u.unit}`) ?? []);
    process.stdout.write(
      `${new Date().toTimeString().slice(0, 8)}  ${deployed.length ? `deployed ${deployed.map((r) => r.machine).join(' ')}` : 'nothing to deploy'}${units.length ? ` (${units.join(', ')})` : ''} in ${milliseconds(now() - started)}\n`,
    );
  };
  await loop();
  let pending = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let running = Promise.resolve();
  const ignored = join(repo.root, 'var');
  const stop = watchTree(
    repo.root,
    (path) => path === ignored || path.startsWith(`${ignored}/`) || path.endsWith('/.git') || path.includes('/.git/'),
    (path) => {
      pending.add(path);
      clearTimeout(timer);
      // Editors write a file in several steps: wait for them to settle.
      timer = setTimeout(() => {
        const changed = [...pending];
        pending = new Set();
        running = running
          .then(() => loop(changed))
          // Watching goes on after a failed round; a bug shows its stack.
          .catch((error: unknown) => void printError(error));
      }, 15);
    },
  );
  process.stdout.write(`watching ${repo.root} for ${machines.join(' ')}; Ctrl-C stops\n`);
  await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
  stop();
  return exitStatus.ok;
}
