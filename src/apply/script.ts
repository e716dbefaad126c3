import { publishBash } from '../facts/probe.ts';
import { publicDirectory } from '../facts/public.ts';
import { initdMakefile, type DeployPlan } from '../plan/deploy-plan.ts';
import { shellQuote } from '../util/quote.ts';
import { bashData, bashFile, targetScript } from '../util/bash-file.ts';
import { inspectBash } from './inspect.ts';
import { pathData, restoreFunctions, rootFunctions } from './target-paths.ts';

export interface ApplyInput {
  plan: DeployPlan;
  /** Packages to install that the target lacks, and to purge that it has. */
  install: string[];
  purge: string[];
  /** Units the new generation manages (a template as `x@*.service`): a failed one is reported even when this deploy did not touch it. */
  managedUnits: string[];
  /** Generations to keep. */
  keep: number;
  /** Written into the generation: when, from where, by whom. */
  meta: Record<string, string>;
}

/** The NUL-separated list files the apply reads from the staging generation's lists/ (written by listFiles). */
export function listFiles(plan: DeployPlan): Record<string, string> {
  const ops = plan.operations;
  const list = (items: string[]) => items.map((item) => `${item}\0`).join('');
  const replaced = new Set(ops.mustEmpty);
  return {
    'take-over': list(ops.takeOver.flat()),
    replace: list(ops.replace),
    remove: list(ops.remove),
    'remove-dirs': list(ops.removeDirs),
    // Directories that go for good (not replaced by a file or link): an original comes back.
    'gone-dirs': list(ops.removeDirs.filter((dir) => !replaced.has(dir))),
    'must-empty': list(ops.mustEmpty),
    'managed-under': list(ops.managedUnder),
    'make-dirs': list(ops.makeDirs),
    'fix-dirs': list(ops.fixDirs.flat()),
    place: list(ops.place),
    paths: list(ops.paths),
  };
}

/** The apply's phases, in order: it prints `phase NAME` as it enters each. */
export const applyPhases = ['check', 'packages', 'stop', 'prune', 'files', 'daemon-reload', 'hook', 'units', 'health', 'commit'] as const;
export type ApplyPhase = (typeof applyPhases)[number];

/**
 * What the apply prints for the CLI, a line each: the word, a space, the
 * text. Each has a bash printer, named as the key, written in front of
 * apply.bash; an unhealthy or still-failed line is followed by the unit's
 * status and journal, indented by two spaces.
 */
const applyEvents = {
  phase: 'phase',
  refused: 'refused',
  refused_by_check: 'refused-by-check',
  unhealthy: 'unhealthy',
  still_failed: 'still-failed',
  generation: 'generation',
} as const;

/** Bash: the printer of each event (`unhealthy "$unit"` prints `unhealthy UNIT`). */
function eventPrinters(): string {
  return Object.entries(applyEvents)
    .map(([printer, word]) => `${printer}() { printf '%s %s\\n' ${shellQuote(word)} "$1"; }`)
    .join('\n');
}

/** A unit the apply reports, with its status and journal lines. */
export interface UnitReport {
  unit: string;
  details: string[];
}

/** What an apply said, read from its output. */
export interface ApplyOutcome {
  /** The phases it entered, in order. */
  phases: ApplyPhase[];
  /** The generation it committed. */
  generation?: number;
  /** Why it changed nothing: a directory in the way, or a layer's check (byCheck). */
  refused?: { message: string; byCheck: boolean };
  /** Units unhealthy after its change (it did not commit). */
  unhealthy: UnitReport[];
  /** Units of the committed generation that are failed, though it did not act on them. */
  stillFailed: UnitReport[];
}

/** The phase a line of the apply's output enters, if it is a phase line. */
export function applyPhaseOf(line: string): ApplyPhase | undefined {
  if (!line.startsWith(`${applyEvents.phase} `)) return undefined;
  const name = line.slice(applyEvents.phase.length + 1);
  return applyPhases.find((phase) => phase === name);
}

/** Read the apply's output (other lines, such as publish's, are left alone). */
export function readApplyOutput(stdout: string): ApplyOutcome {
  const outcome: ApplyOutcome = { phases: [], unhealthy: [], stillFailed: [] };
  let report: UnitReport | undefined;
  for (const line of stdout.split('\n')) {
    if (line.startsWith('  ')) {
      report?.details.push(line);
      continue;
    }
    report = undefined;
    const space = line.indexOf(' ');
    const [word, text] = space < 0 ? [line, ''] : [line.slice(0, space), line.slice(space + 1)];
    const phase = applyPhaseOf(line);
    if (phase) outcome.phases.push(phase);
    else if (word === applyEvents.generation && /^\d+$/.test(text)) outcome.generation ??= Number(text);
    else if ((word === applyEvents.refused || word === applyEvents.refused_by_check) && text && !outcome.refused)
      outcome.refused = { message: text, byCheck: word === applyEvents.refused_by_check };
    else if ((word === applyEvents.unhealthy || word === applyEvents.still_failed) && text) {
      report = { unit: text, details: [] };
      (word === applyEvents.unhealthy ? outcome.unhealthy : outcome.stillFailed).push(report);
    }
  }
  return outcome;
}

/** The reports' detail lines, one block after another. */
export function reportDetails(reports: UnitReport[]): string {
  return reports.flatMap((report) => report.details).join('\n');
}

const applyBash = bashFile(new URL('./apply.bash', import.meta.url));
const recordStateBash = bashFile(new URL('./record-state.bash', import.meta.url));
const generationsBash = bashFile(new URL('./generations.bash', import.meta.url));

/**
 * The one bash script that applies a transferred staging generation to `/`
 * and reconciles, then commits it (apply.bash says how). It does what the
 * plan says: whether the hook runs, and which units restart outright
 * because they had failed, are decided on the operator's side.
 */
export function applyScript(input: ApplyInput): string {
  const { plan } = input;
  // Restart and reload act on running units only (try-), except on those the plan restarts because they had failed.
  const by = (action: string) => plan.units.filter((u) => u.action === action && !u.wasFailed).map((u) => u.unit);
  const data = bashData({
    ...pathData('generations_dir', 'originals_dir', 'pending_file', 'created_dirs_files', 'checks_dir'),
    initd_dir: initdMakefile.slice(0, initdMakefile.lastIndexOf('/')),
    public_dir: publicDirectory,
    pkg_install: input.install,
    pkg_purge: input.purge,
    stop: by('stop'),
    restart: by('restart'),
    reload: [...by('reload-or-restart'), ...by('reload')],
    start: by('start'),
    restart_failed: plan.units.filter((u) => u.wasFailed).map((u) => u.unit),
    acted: plan.units.filter((u) => u.action !== 'stop').map((u) => u.unit),
    managed: input.managedUnits,
    daemon_reload: plan.daemonReload ? 1 : 0,
    run_hook: plan.hook ? 1 : 0,
    keep: input.keep,
    meta: Object.entries(input.meta).map(([key, value]) => `${key}=${value}`),
  });
  return targetScript(`${data}\n${eventPrinters()}`, [rootFunctions, inspectBash, restoreFunctions, publishBash, applyBash]);
}

/** Take the current generation's records again (the probe found paths moved, but each as the generation says). */
export function recordStateScript(): string {
  return targetScript(bashData(pathData('generations_dir', 'pending_file')), [rootFunctions, inspectBash, recordStateBash]);
}

/** List the generations a machine keeps (generations.bash says how). */
export function generationsScript(): string {
  return targetScript(bashData(pathData('generations_dir')), [rootFunctions, generationsBash]);
}
