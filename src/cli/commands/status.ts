import pLimit from 'p-limit';
import type { Manifest } from '../../build/manifest.ts';
import { probeScriptFor, readProbe } from '../../facts/probe.ts';
import { HomecloudError, isHomecloudError, machineFailure } from '../../load/errors.ts';
import { loadModel, reachProblem, selectMachines, type Model } from '../../load/model.ts';
import type { RepoPaths } from '../../load/repo.ts';
import { liveState } from '../../plan/live.ts';
import { printable } from '../../report/network.ts';
import { colors, exitStatus } from '../../report/output.ts';
import { attentionOf, parseStatus, statusJson, statusScript, statusText, unknownStatus, type MachineStatus } from '../../report/status.ts';
import { readyTarget } from '../../transport/host-key.ts';
import { describeSshFailure, runScript } from '../../transport/ssh.ts';
import type { Target } from '../../transport/transport.ts';
import { mark } from '../../util/timing.ts';
import { jobsFor, repoFrom } from '../context.ts';
import type { GlobalOptions } from '../options.ts';

/** `--watch` without a value: read again every this many seconds. */
const defaultWatchSeconds = 5;

/** One line per machine, each read in one SSH round trip (all at once up to --jobs); --watch: again and again on a terminal. */
export async function run(names: string[], options: GlobalOptions & { watch?: string | boolean }): Promise<number> {
  const every = watchSeconds(options);
  const repo = repoFrom(options);
  const model = await loadModel(repo);
  const machines = selectMachines(model, names);
  mark('model loaded');
  const limit = pLimit(jobsFor(options, model));
  const readAll = () => Promise.all(machines.map((machine) => limit(() => readStatus(repo, model, machine))));
  if (every === undefined) {
    const statuses = await readAll();
    mark('machines read');
    process.stdout.write(options.json ? JSON.stringify({ machines: statuses.map(statusJson) }) + '\n' : statusText(statuses, colors) + '\n');
    return statuses.some((status) => attentionOf(status).length) ? exitStatus.machineFailed : exitStatus.ok;
  }
  let interrupted = false;
  const stopped = new Promise<void>((resolve) =>
    process.once('SIGINT', () => {
      interrupted = true;
      resolve();
    }),
  );
  while (!interrupted) {
    const started = Date.now();
    const statuses = await Promise.race([readAll(), stopped]);
    if (!statuses) break;
    // Drawn whole once read: the screen never shows half a round.
    process.stdout.write(
      `\u001b[H\u001b[2J${statusText(statuses, colors)}\n\n${colors.dim(`${new Date().toTimeString().slice(0, 8)}, every ${every} s; Ctrl-C stops`)}\n`,
    );
    await Promise.race([new Promise((resolve) => setTimeout(resolve, Math.max(0, every * 1000 - (Date.now() - started)))), stopped]);
  }
  return exitStatus.ok;
}

/** --watch's seconds, or undefined without it; it redraws a terminal, so standard output must be one. */
function watchSeconds(options: GlobalOptions & { watch?: string | boolean }): number | undefined {
  if (options.watch === undefined || options.watch === false) return undefined;
  if (options.json) throw new HomecloudError('--watch redraws a table on a terminal; --json prints one document', undefined, 'leave one of them out');
  if (!process.stdout.isTTY)
    throw new HomecloudError(
      '--watch needs a terminal: it clears the screen and draws again',
      undefined,
      'without --watch, status prints once (for a log or a script)',
    );
  if (options.watch === true) return defaultWatchSeconds;
  const seconds = Number(options.watch);
  if (!Number.isFinite(seconds) || seconds < 0.5) throw new HomecloudError(`--watch takes a number of seconds, at least 0.5, not "${options.watch}"`);
  return seconds;
}

/** A machine's status from one round trip: the probe (failed units, the committed manifest, moved paths) and status.bash's reads. */
async function readStatus(repo: RepoPaths, model: Model, machine: string): Promise<MachineStatus> {
  const problem = reachProblem(model, machine);
  if (problem) return unknownStatus(machine, false, problem.of(machine, 'connect'));
  let target: Target;
  try {
    target = await readyTarget(model, machine);
  } catch (error) {
    return unknownStatus(machine, false, machineFailure(error, machine, 'connect'));
  }
  const started = Date.now();
  const result = await runScript(target, statusScript(probeScriptFor(repo, machine)));
  if (result.status === 255) return unknownStatus(machine, false, new HomecloudError(describeSshFailure(target, result.stderr)).of(machine, 'connect'));
  const unread = (message: string, hint?: string) => unknownStatus(machine, true, new HomecloudError(message, undefined, hint).of(machine, 'probe'));
  if (result.status !== 0) return unread(`exit status ${result.status}`, printable(result.stderr, 400) || undefined);
  const lines = result.stdout.split('\n');
  const probed = readProbe(repo, target, lines, Date.now() - started);
  if (probed.error) return unknownStatus(machine, true, probed.error.of(machine, 'probe'));
  let committed: Manifest | undefined;
  try {
    committed = probed.manifest ? (JSON.parse(probed.manifest) as Manifest) : undefined;
  } catch {
    return unread('its current generation has a manifest.json that is not JSON', 'deploy again: the next generation writes a new one');
  }
  try {
    return {
      machine,
      reachable: true,
      ...parseStatus(lines),
      failedUnits: probed.failedUnits ?? [],
      drift: liveState(committed?.entries ?? {}, probed.moved).drift,
      pendingApply: probed.pending === true,
    };
  } catch (error) {
    if (!isHomecloudError(error)) throw error;
    return unknownStatus(machine, true, error.of(machine, 'probe'));
  }
}
