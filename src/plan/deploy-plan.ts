import type { Manifest, ManifestEntries } from '../build/manifest.ts';
import type { TriggerDeclaration } from '../build/declared.ts';
import type { Drift } from './live.ts';
import { changesFiles, fileOperations, type FileOperations } from './operations.ts';
import { actionStrength, reconcile, type Plan, type PlannedUnit } from './reconcile.ts';

/** The initd hook: every apply runs `make -C` in its directory when the machine's tree has it (FORMAT.md section 7). */
export const initdMakefile = '/usr/local/opt/initd/Makefile';

/** The initd hook an apply runs, and why: the tree has it, and this deploy brings it (`added`, `changed`) or not (`present`). */
export interface HookRun {
  path: string;
  reason: 'added' | 'changed' | 'present';
}

export interface DeployUnit extends PlannedUnit {
  /**
   * The unit is failed on the machine now: the apply restarts it outright
   * (its action is `restart`), where a try-restart or try-reload would leave
   * it failed. Otherwise restart and reload act only on a running unit.
   */
  wasFailed?: true;
}

export interface DeployPlan extends Plan {
  units: DeployUnit[];
  /** Managed paths changed on the machine since homecloud placed them: restored by the deploy. */
  drift: Drift[];
  /** The last apply did not commit: everything since the last committed generation is done again. */
  redo: boolean;
  /** What the apply does to files, from the machine as it is. */
  operations: FileOperations;
  /**
   * Packages the deploy installs through apt before the transfer, which needs
   * them (`['rsync']` on a bare Debian): done by deploy, never by plan; none
   * when there is nothing to do.
   */
  bootstrap: string[];
  /** The initd hook the apply runs after daemon-reload (none when the tree has no Makefile, or there is nothing to do). */
  hook: HookRun | null;
}

export interface DeployPlanInput {
  /** The last committed generation's manifest (none on a machine homecloud never deployed to). */
  committed: Manifest | undefined;
  /** The machine's managed paths as they are now. */
  live: ManifestEntries;
  drift: Drift[];
  /** Whether an apply since the last commit did not commit. */
  pending: boolean;
  next: Manifest;
  read: (path: string) => string;
  triggers: TriggerDeclaration[];
  /** Units failed on the machine now, managed or not (the probe's list). */
  failedUnits: string[];
  /** Whether the machine has rsync, which the transfer needs. */
  rsync: boolean;
  /** Packages to install that the machine lacks, and to purge that it has. */
  packageWork: { install: string[]; purge: string[] };
  /** The declaration a generator made a path from, named in the reasons. */
  declaredIn?: (path: string) => string | undefined;
}

/**
 * Plan a deploy against the last committed generation, so that an apply that
 * did not commit is never forgotten (its changes and restarts are done
 * again), and against the machine as it is, so that hand edits are restored
 * with the unit actions that follow them.
 */
export function planDeploy(input: DeployPlanInput): DeployPlan {
  const { committed, live, next } = input;
  const fromCommitted = reconcile(committed, next, input.read, input.triggers, input.declaredIn);
  const fromLive = reconcile({ ...next, entries: live }, next, input.read, input.triggers, input.declaredIn);
  const units = new Map<string, DeployUnit>();
  for (const unit of [...fromCommitted.units, ...fromLive.units]) {
    const known = units.get(unit.unit);
    if (!known) units.set(unit.unit, { ...unit, reasons: [...unit.reasons] });
    else {
      if (actionStrength[unit.action] > actionStrength[known.action]) known.action = unit.action;
      for (const reason of unit.reasons) if (!known.reasons.includes(reason)) known.reasons.push(reason);
    }
  }
  // A restart or reload acts on a running unit only (a unit a layer ships but this machine does not run stays
  // stopped); one that is failed now (say, by the change before) is meant to run, and restarts. Template patterns
  // (x@*.service) name no failed unit.
  const failed = new Set(input.failedUnits);
  for (const unit of units.values()) {
    if (unit.action === 'stop' || unit.action === 'start' || !failed.has(unit.unit)) continue;
    unit.action = 'restart';
    unit.wasFailed = true;
    unit.reasons.push('it had failed');
  }
  const operations = fileOperations(committed?.entries ?? {}, live, next.entries);
  // Paths that differ on the machine only: reported too (drift, or an apply that did not commit).
  const reported = new Set([...fromCommitted.added, ...fromCommitted.changed, ...fromCommitted.removed]);
  const more = (paths: string[]) => paths.filter((path) => !reported.has(path));
  const plan: DeployPlan = {
    added: [...fromCommitted.added, ...more(fromLive.added), ...newEmptyDirectories(committed?.entries ?? {}, next.entries)].sort(),
    changed: [...fromCommitted.changed, ...more(fromLive.changed)].sort(),
    removed: [...fromCommitted.removed, ...more(fromLive.removed)].sort(),
    daemonReload: fromCommitted.daemonReload || fromLive.daemonReload,
    units: [...units.values()].sort((a, b) => (a.unit < b.unit ? -1 : 1)),
    packages: next.packages,
    drift: input.drift,
    redo: input.pending,
    operations,
    bootstrap: [],
    hook: null,
  };
  // What comes with an apply, and only with one: no apply runs when there is nothing to do.
  if (!hasWork(plan, input.packageWork)) return plan;
  if (!input.rsync) plan.bootstrap = ['rsync'];
  plan.hook = hookRun(next.entries, plan);
  return plan;
}

/** Whether the apply runs the initd hook, and why: whenever the tree has it (a link to one too). */
export function hookRun(next: ManifestEntries, plan: Pick<Plan, 'added' | 'changed'>): HookRun | null {
  const entry = next[initdMakefile];
  if (!entry || entry.type === 'dir') return null;
  const reason = plan.added.includes(initdMakefile) ? 'added' : plan.changed.includes(initdMakefile) ? 'changed' : 'present';
  return { path: initdMakefile, reason };
}

/** New directories with nothing in them: the only sign of them in a plan. */
function newEmptyDirectories(committed: ManifestEntries, next: ManifestEntries): string[] {
  const paths = Object.keys(next).sort();
  return paths
    .filter((path, i) => next[path]!.type === 'dir' && !committed[path] && !(paths[i + 1]?.startsWith(`${path}/`) ?? false))
    .map((path) => `${path}/`);
}

/** Whether a deploy with this plan changes anything on the machine. */
export function hasWork(plan: DeployPlan, packages: { install: string[]; purge: string[] }): boolean {
  return plan.redo || plan.units.length > 0 || packages.install.length + packages.purge.length > 0 || changesFiles(plan.operations);
}

/** The plan as --json shows it: without the apply's file lists, which can be long. */
export function publicPlan(plan: DeployPlan): Omit<DeployPlan, 'operations'> {
  const { operations: _operations, ...rest } = plan;
  return rest;
}

/** The plan when the machine already is the generation to deploy, with nothing to install or purge: nothing to do. */
export function unchangedPlan(packages: Manifest['packages']): DeployPlan {
  return {
    added: [],
    changed: [],
    removed: [],
    daemonReload: false,
    units: [],
    packages,
    drift: [],
    redo: false,
    operations: {
      takeOver: [],
      replace: [],
      remove: [],
      removeDirs: [],
      mustEmpty: [],
      managedUnder: [],
      makeDirs: [],
      fixDirs: [],
      place: [],
      paths: [],
      missingDirs: 0,
    },
    bootstrap: [],
    hook: null,
  };
}
