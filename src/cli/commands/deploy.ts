import { deployMachine, fetchGeneration, listGenerations, type DeployResult, type Progress } from '../../apply/deploy.ts';
import type { MachineResult } from '../../build/builder.ts';
import { waitSeconds } from '../context.ts';
import { publicPlan, type DeployPlan } from '../../plan/deploy-plan.ts';
import { LiveLines } from '../../report/live.ts';
import { errorJson } from '../../load/errors.ts';
import { colors, exitStatus, milliseconds, printMachineError, table } from '../../report/output.ts';
import { exitWhenWritten } from '../exit.ts';
import { acrossBuiltMachines } from '../machines.ts';
import type { GlobalOptions } from '../options.ts';

/** Rounds of a deploy at most: the first, and those that bring the machines' new public material to the others. */
const maxRounds = 3;

/** A machine's line in the live view: where its deploy is, then how it ended. */
interface Row {
  started?: number;
  progress?: Progress;
  result?: DeployResult;
}

export async function run(names: string[], options: GlobalOptions & { rollbackOnFailure?: boolean; wait?: string }): Promise<number> {
  const wait = waitSeconds(options);
  const interrupt = new AbortController();
  // The first Ctrl-C stops every machine before its apply (an apply under way finishes on its machine); a second one quits.
  const onInterrupt = () => {
    if (interrupt.signal.aborted) return void exitWhenWritten(exitStatus.interrupted);
    interrupt.abort();
    process.stderr.write('\ninterrupted: stopping before any apply; an apply already running goes on to its end (Ctrl-C again quits at once)\n');
  };
  process.on('SIGINT', onInterrupt);
  const live = !options.json && process.stdout.isTTY === true;
  const rows = new Map<string, Row>();
  let view: LiveLines | undefined;
  let width = Math.max(...names.map((name) => name.length), 8);
  const report = (machine: string, progress: Progress) => {
    const row = rows.get(machine)!;
    row.progress = progress;
    if (options.json) process.stdout.write(`${JSON.stringify({ event: 'phase', machine, ...progress })}\n`);
    // Waiting for another deploy is worth a line in a log too.
    else if ((options.verbose || progress.phase === 'waiting') && !live) process.stdout.write(`${machine.padEnd(width)}  ${describeProgress(progress)}\n`);
  };

  /** Build and deploy every named machine once; the results, those that never got to deploy included. */
  const round = async (keep?: (built: MachineResult) => boolean): Promise<DeployResult[]> => {
    const { outcomes } = await acrossBuiltMachines(
      options,
      names,
      async (target, { repo, model }) => {
        const row = rows.get(target.machine)!;
        row.started = Date.now();
        row.result = undefined;
        const result = await deployMachine(repo, target, {
          keep: model.settings.generations,
          waitSeconds: wait,
          signal: interrupt.signal,
          onProgress: (progress) => report(target.machine, progress),
        });
        if (result.status === 'failed' && options.rollbackOnFailure && result.details !== undefined && !interrupt.signal.aborted) {
          report(target.machine, { phase: 'rollback' });
          await rollBack(repo, target, model.settings.generations, result);
        }
        row.result = result;
        // Plain output: a line per machine as it finishes. JSON: the same as NDJSON events, then a summary.
        if (options.json) process.stdout.write(`${JSON.stringify(event(result))}\n`);
        else if (!live) process.stdout.write(`${result.machine.padEnd(width)}  ${describe(result)} (${milliseconds(result.milliseconds)})\n`);
        if (!options.json && options.verbose && !live) {
          for (const drift of result.plan?.drift ?? []) process.stdout.write(`${result.machine.padEnd(width)}  drift: ${drift.path}: ${drift.detail}\n`);
          // Why each unit was acted on (a setting that takes a restart, a changed file it reads).
          if (result.status === 'deployed')
            for (const unit of result.plan?.units ?? [])
              process.stdout.write(`${result.machine.padEnd(width)}  ${unit.action} ${unit.unit}: ${unit.reasons.join('; ')}\n`);
        }
        return result;
      },
      {
        onBuilt: (machines) => {
          for (const { machine } of machines) rows.set(machine, rows.get(machine) ?? {});
          width = Math.max(width, ...machines.map(({ machine }) => machine.length));
          if (live && !view) {
            view = new LiveLines(process.stdout, () => liveTable(rows));
            view.start();
          }
        },
        keep,
        // A hosted machine deploys once its host has: the host's deploy may make or start it.
        hostsFirst: (result) => result.status === 'deployed' || result.status === 'unchanged',
      },
    );
    // Machines that never got to deploying (their build failed, or the sandbox lacks them) were not reported yet.
    const unreported: DeployResult[] = outcomes.filter((o) => !o.value).map(({ machine, error }) => ({ machine, status: 'failed', error, milliseconds: 0 }));
    for (const result of unreported) {
      if (rows.has(result.machine)) rows.get(result.machine)!.result = result;
      if (options.json) process.stdout.write(`${JSON.stringify(event(result))}\n`);
      else if (!live) process.stdout.write(`${result.machine.padEnd(width)}  ${describe(result)}\n`);
    }
    return [...outcomes.flatMap((o) => (o.value ? [o.value] : [])), ...unreported];
  };

  let results: DeployResult[];
  try {
    results = await round();
    // A machine published something new (its certificate, say): the others' trees may hold it, so they are built and
    // deployed again, until nothing new is published (a certificate may name addresses that only the probe found).
    for (let again = 2; again <= maxRounds && !interrupt.signal.aborted; again++) {
      const published = results.filter((r) => r.publicChanged && r.status !== 'failed').map((r) => r.machine);
      if (!published.length) break;
      const reason = `${published.join(', ')} published new public material (certificates, keys, addresses)`;
      if (options.json) process.stdout.write(`${JSON.stringify({ event: 'round', round: again, reason })}\n`);
      else if (!live) process.stdout.write(`${reason}: building and deploying again\n`);
      // Only the machines whose trees the new material changed go again.
      const next = new Map((await round((built) => built.status === 'failed' || built.written + built.removed > 0)).map((result) => [result.machine, result]));
      // What the later round did, where it did something; the earlier result otherwise.
      results = results.map((earlier) => {
        const later = next.get(earlier.machine);
        // Left out of this round: its tree did not change, so what it published was handed on.
        if (!later) return { ...earlier, publicChanged: false };
        const merged = later.status !== 'unchanged' || earlier.status === 'failed' ? later : earlier;
        return { ...merged, publicChanged: later.publicChanged };
      });
      for (const result of results) if (rows.has(result.machine)) rows.get(result.machine)!.result = result;
    }
  } finally {
    // Also when a bug is thrown: a live view left ticking would keep the process from ever ending.
    process.off('SIGINT', onInterrupt);
    view?.stop();
  }
  const count = (status: DeployResult['status']) => results.filter((r) => r.status === status).length;
  const failed = results.filter((r) => r.status === 'failed' || r.status === 'interrupted');
  if (options.json) {
    process.stdout.write(
      `${JSON.stringify({ event: 'summary', deployed: count('deployed'), unchanged: count('unchanged'), failed: count('failed'), ...(count('interrupted') ? { interrupted: count('interrupted') } : {}) })}\n`,
    );
  } else {
    process.stdout.write(summary(results, count));
    for (const result of failed) printMachineError(result.machine, result.error, { after: [result.rollback && `  ${result.rollback}`, result.details] });
  }
  if (count('interrupted')) return exitStatus.interrupted;
  return failed.length ? exitStatus.machineFailed : exitStatus.ok;
}

function summary(results: DeployResult[], count: (status: DeployResult['status']) => number): string {
  const problems = count('failed') + count('interrupted');
  if (problems) {
    const parts = [count('failed') && `${count('failed')} failed`, count('interrupted') && `${count('interrupted')} interrupted`].filter(Boolean).join(', ');
    return colors.red(`${problems} of ${results.length} machines did not deploy (${parts}).\n`);
  }
  if (count('deployed')) return `Deployed ${count('deployed')} of ${results.length} machines; the rest had nothing to do.\n`;
  return 'Nothing to do: every machine is as its tree says.\n';
}

const spinner = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/** The live view: a table of machines, each with its phase and elapsed time, or how it ended. */
function liveTable(rows: Map<string, Row>): string[] {
  const now = Date.now();
  const frame = spinner[Math.floor(now / 100) % spinner.length]!;
  const lines = [...rows].map(([machine, row]) => {
    if (row.result) return [machine, milliseconds(row.result.milliseconds), describe(row.result)];
    if (row.started === undefined) return [machine, '', colors.dim('waiting')];
    return [machine, milliseconds(now - row.started), `${colors.cyan(frame)} ${describeProgress(row.progress ?? { phase: 'connect' })}`];
  });
  return table(lines, [colors.dim('MACHINE'), colors.dim('TIME'), colors.dim('RESULT')]).split('\n');
}

function describeProgress(progress: Progress): string {
  if (progress.phase === 'transfer') return `transfer: ${progress.files} file${progress.files === 1 ? '' : 's'} to send`;
  if (progress.phase === 'waiting') return `waiting for ${progress.holder ?? 'another deploy'}`;
  if (progress.phase === 'connect' || progress.phase === 'bootstrap' || progress.phase === 'apply' || progress.phase === 'rollback') return progress.phase;
  return `apply: ${progress.phase}`;
}

/** After a failed apply: deploy the current generation again, and say so in the result (the deploy still counts as failed). */
async function rollBack(
  repo: Parameters<typeof deployMachine>[0],
  target: Parameters<typeof deployMachine>[1],
  keep: number,
  result: DeployResult,
): Promise<void> {
  const current = (await listGenerations(target)).find((g) => g.current)?.generation;
  if (current === undefined) {
    result.rollback = 'there was no earlier generation to go back to';
    return;
  }
  const back = await deployMachine(repo, target, {
    keep,
    command: 'rollback',
    desired: () => fetchGeneration(repo, target, current),
    commit: `rollback to generation ${current} after a failed deploy`,
  });
  result.rollback =
    back.status === 'failed'
      ? `rolling back to generation ${current} failed too: ${back.error?.message}`
      : `rolled back to generation ${current}${back.generation ? ` (now generation ${back.generation})` : ''}`;
}

function event(result: DeployResult) {
  return {
    event: result.status,
    machine: result.machine,
    generation: result.generation,
    milliseconds: result.milliseconds,
    plan: result.plan && publicPlan(result.plan),
    error: result.error && errorJson(result.error),
    details: result.details,
    rollback: result.rollback,
  };
}

/** Drift that a deploy corrected, an apply that had not committed, and what it installed first, said after what it did. */
export function notes(plan: DeployPlan): string {
  const parts = [
    plan.redo && 'the last apply had not committed: done again',
    plan.drift.length && `drift corrected: ${plan.drift.length} path${plan.drift.length === 1 ? '' : 's'}`,
    plan.bootstrap.length && `installed ${plan.bootstrap.join(' ')} first`,
  ].filter(Boolean);
  return parts.length ? `; ${parts.join('; ')}` : '';
}

function describe(result: DeployResult): string {
  const plan = result.plan;
  switch (result.status) {
    case 'unchanged':
      return colors.dim('nothing to do');
    case 'interrupted':
      return colors.yellow('interrupted');
    case 'failed':
      return colors.red(result.rollback ? `failed; ${result.rollback}` : 'failed');
    case 'deployed': {
      const files = plan ? `${plan.added.length} added, ${plan.changed.length} changed, ${plan.removed.length} removed` : '';
      const units = plan?.units.length ? `; ${plan.units.map((u) => `${u.action} ${u.unit}`).join(', ')}` : '';
      return `${colors.green(`generation ${result.generation}`)}: ${files}${units}${plan ? notes(plan) : ''}`;
    }
  }
}
