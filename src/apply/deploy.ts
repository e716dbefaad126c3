import { setMaxListeners } from 'node:events';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Manifest } from '../build/manifest.ts';
import { machineOutput } from '../build/builder.ts';
import { parseTriggers, triggersFile } from '../build/declared.ts';
import { declarationsBeside } from '../build/generate.ts';
import { keyValues, probe, publicOf, rememberManifest, type ProbeOutcome } from '../facts/probe.ts';
import { storePublic } from '../facts/public.ts';
import { HomecloudError, machineFailure, type MachinePhase } from '../load/errors.ts';
import { nameArgument } from '../load/names.ts';
import type { RepoPaths } from '../load/repo.ts';
import { hasWork, planDeploy, unchangedPlan, type DeployPlan } from '../plan/deploy-plan.ts';
import { sha256 } from '../util/hash.ts';
import { liveState } from '../plan/live.ts';
import { instancesOf, unitOf, wantedUnit } from '../plan/units.ts';
import { shellQuote, transportFor } from '../transport/ssh.ts';
import type { Target } from '../transport/transport.ts';
import type { ProcessResult } from '../util/process.ts';
import { applyPhaseOf, applyScript, generationsScript, listFiles, readApplyOutput, recordStateScript, reportDetails } from './script.ts';
import { describeHolder, lockMachine, type LockedMachine, type LockHolder } from './session.ts';
import { generationsDir, stateDir } from './target-paths.ts';

export interface DeployResult {
  machine: string;
  status: 'unchanged' | 'deployed' | 'failed' | 'interrupted';
  plan?: DeployPlan;
  generation?: number;
  error?: HomecloudError;
  /** The unhealthy units' status and journal lines, when the apply failed. */
  details?: string;
  /** What --rollback-on-failure did. */
  rollback?: string;
  /** The machine's public material changed (found by the probe, or made by the apply): other machines' trees may change. */
  publicChanged?: boolean;
  milliseconds: number;
}

/** Where a deploy is, for live progress: waiting, connect, transfer, then the apply script's phases. */
export interface Progress {
  phase: string;
  /** Files to send, in the transfer phase. */
  files?: number;
  /** Who holds the machine, in the waiting phase. */
  holder?: string;
}

/** Where the desired tree and manifest are: the build's output, or a generation fetched back for a rollback. */
export interface DesiredState {
  tree: string;
  manifest: string;
}

export interface MachineDeployPlan {
  /** Whether the machine has a committed generation. */
  committed: boolean;
  plan: DeployPlan;
  /** Packages to install that the target lacks, and to purge that it has. */
  install: string[];
  purge: string[];
  /** Units the new generation manages (templates as x@*.service). */
  managedUnits: string[];
  /** Managed units that are failed on the machine now. */
  failedUnits: string[];
}

/** Plan a machine against what a probe found: its last committed generation and its managed paths as they are. */
export function planFromProbe(probed: ProbeOutcome, output: DesiredState): MachineDeployPlan {
  const text = readFileSync(output.manifest);
  // The common case: the generation in place is this one, nothing moved since its commit, and no package is to be installed or purged.
  if (probed.manifestSha && !probed.moved && !probed.pending && !probed.failedUnits?.length && sha256(text) === probed.manifestSha) {
    const packages = packagesOf(text);
    const work = packages && packageWork(probed, packages);
    if (packages && work && !work.install.length && !work.purge.length)
      return { committed: true, plan: unchangedPlan(packages), ...work, managedUnits: [], failedUnits: [] };
  }
  const committed = probed.manifest ? (JSON.parse(probed.manifest) as Manifest) : undefined;
  const next = JSON.parse(text.toString('utf8')) as Manifest;
  const read = (path: string) => readFileSync(join(output.tree, path), 'utf8');
  const triggers = Object.keys(next.entries)
    .filter((path) => triggersFile.test(path) && next.entries[path]!.type === 'file')
    .flatMap((path) => parseTriggers(read(path), path));
  const live = liveState(committed?.entries ?? {}, probed.moved);
  const work = packageWork(probed, next.packages);
  const plan = planDeploy({
    committed,
    live: live.entries,
    drift: live.drift,
    pending: probed.pending === true,
    next,
    read,
    triggers,
    failedUnits: probed.failedUnits ?? [],
    rsync: probed.rsync !== false,
    packageWork: work,
    declaredIn: declarationsBeside(output.manifest),
  });
  const managedUnits = unitsManagedBy(next);
  return {
    committed: committed !== undefined,
    plan,
    ...work,
    managedUnits,
    failedUnits: (probed.failedUnits ?? []).filter((unit) => managedUnits.some((pattern) => globMatch(pattern, unit))),
  };
}

/** Packages to install that the target lacks, and to purge that it has. */
function packageWork(probed: ProbeOutcome, packages: Manifest['packages']): { install: string[]; purge: string[] } {
  const installed = probed.packages ?? new Set<string>();
  return { install: packages.install.filter((name) => !installed.has(name)), purge: packages.purge.filter((name) => installed.has(name)) };
}

/** A manifest's packages without parsing its entries: they come last, as the builder writes it. */
function packagesOf(text: Buffer): Manifest['packages'] | undefined {
  const at = text.lastIndexOf('"packages":');
  if (at < 0) return undefined;
  try {
    const packages = JSON.parse(text.toString('utf8', at + '"packages":'.length, text.lastIndexOf('}'))) as Manifest['packages'];
    return Array.isArray(packages.install) && Array.isArray(packages.purge) ? packages : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Plan a machine (plan): one probe round trip, which only reads. What the
 * deploy would do first (install rsync) is in the plan's `bootstrap`, done by
 * deployMachine. No lock is taken, so not even /run/homecloud is made (the
 * lock, in /run, would be no change to what homecloud manages, but a plan
 * need not wait for a deploy); the probe's scratch directory under /tmp is
 * gone before it ends. The e2e test compares the machine before and after.
 */
export async function probeAndPlan(repo: RepoPaths, target: Target, output: DesiredState = machineOutput(repo, target.machine)): Promise<MachineDeployPlan> {
  const probed = await probe(repo, target);
  if (probed.error) throw probed.error.of(target.machine, 'probe');
  return planFromProbe(probed, output);
}

/** Units whose files or drop-ins the manifest places, or which it enables with a wants link. */
export function unitsManagedBy(manifest: Manifest): string[] {
  const units = new Set<string>();
  for (const path of Object.keys(manifest.entries)) {
    const owner = unitOf(path);
    if (owner) units.add(instancesOf(owner.unit));
    const wanted = wantedUnit(path);
    if (wanted) units.add(wanted);
  }
  return [...units].sort();
}

function globMatch(pattern: string, unit: string): boolean {
  if (!pattern.includes('*')) return pattern === unit;
  const [head, tail] = pattern.split('*') as [string, string];
  return unit.length >= head.length + tail.length && unit.startsWith(head) && unit.endsWith(tail);
}

/** The plan's bootstrap: packages the transfer needs (rsync, which a bare Debian lacks), installed through apt before it. */
async function bootstrap(target: Target, packages: string[]): Promise<void> {
  const names = packages.map(shellQuote).join(' ');
  const result = await transportFor(target).run(
    `DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends ${names} >/dev/null`,
  );
  if (result.status !== 0) {
    const list = packages.join(' ');
    throw new HomecloudError(
      `${target.entry.host} has no ${list}, and installing it failed: ${result.stderr.trim().split('\n').pop()}`,
      undefined,
      `install ${list} on the machine (apt-get install ${list}), then deploy again`,
    ).of(target.machine, 'bootstrap');
  }
}

export interface DeployOptions {
  keep: number;
  /** What the generation says it came from (read once the desired state is known). */
  commit?: string | (() => string);
  /** What is deployed: the build's output unless given (a rollback fetches a generation once it holds the lock). */
  desired?: () => Promise<DesiredState>;
  /** What the lock is taken for, as whoever waits for it is told. */
  command?: string;
  /** How long to wait for another deploy that holds the machine, in seconds. */
  waitSeconds?: number;
  onProgress?: (progress: Progress) => void;
  /** Ctrl-C: stop before the apply; an apply already running goes on to its end on the target. */
  signal?: AbortSignal;
}

export const defaultWaitSeconds = 300;

/**
 * Take the machine's lock, probe it, plan against its last committed
 * generation and its paths as they are, rsync the tree into a staging
 * generation (unchanged files hard-linked to the current one), and run one
 * apply script that holds the lock to its commit.
 */
export async function deployMachine(repo: RepoPaths, target: Target, options: DeployOptions): Promise<DeployResult> {
  const started = Date.now();
  const result: DeployResult = { machine: target.machine, status: 'unchanged', milliseconds: 0 };
  const progress = options.onProgress ?? (() => {});
  let phase: MachinePhase = 'connect';
  const interrupted = (when: string) => {
    result.status = 'interrupted';
    result.error = new HomecloudError(`interrupted ${when}`).of(target.machine, phase);
    return result;
  };
  let locked: LockedMachine | undefined;
  let waited = false;
  // One Ctrl-C signal is shared by every machine's ssh and rsync: a listener each, which is no leak (Node warns past 10).
  if (options.signal) setMaxListeners(0, options.signal);
  try {
    if (options.signal?.aborted) return interrupted('before it started: nothing on the machine changed');
    progress({ phase: 'connect' });
    try {
      locked = await lockMachine(repo, target, {
        command: options.command ?? 'deploy',
        waitSeconds: options.waitSeconds ?? defaultWaitSeconds,
        signal: options.signal,
        onWaiting: (holder: LockHolder | undefined) => {
          waited = true;
          progress({ phase: 'waiting', holder: describeHolder(holder) });
        },
      });
    } catch (error) {
      if (options.signal?.aborted) return interrupted('before it started: nothing on the machine changed');
      throw error;
    }
    phase = 'probe';
    if (locked.probe.error) throw locked.probe.error;
    result.publicChanged = locked.probe.publicChanged;
    if (waited) progress({ phase: 'connect' });
    phase = 'fetch';
    const desired = options.desired ? await options.desired() : machineOutput(repo, target.machine);
    phase = 'plan';
    const planned = planFromProbe(locked.probe, desired);
    const { plan, install, purge } = planned;
    result.plan = plan;
    if (!hasWork(plan, { install, purge })) {
      phase = 'apply';
      // Paths whose records moved but which are as the generation says (touched, or a directory's entries changed): recorded again, so the next probe need not look at them.
      if (locked.probe.moved && planned.committed) await locked.run(recordStateScript());
      if (planned.failedUnits.length) await reportFailedUnits(target, planned.failedUnits, result);
      return result;
    }
    if (plan.bootstrap.length) {
      phase = 'bootstrap';
      progress({ phase });
      await bootstrap(target, plan.bootstrap);
    }
    if (options.signal?.aborted) return interrupted('before the transfer: nothing on the machine changed');
    phase = 'transfer';
    progress({ phase, files: plan.operations.place.length });
    const script = applyScript({
      plan,
      install,
      purge,
      managedUnits: planned.managedUnits,
      keep: options.keep,
      meta: {
        date: new Date().toISOString(),
        by: process.env.SUDO_USER ?? process.env.USER ?? 'root',
        commit: (typeof options.commit === 'function' ? options.commit() : options.commit) ?? '',
      },
    });
    try {
      await transfer(repo, target, desired, listFiles(plan), options.signal);
    } catch (error) {
      if (options.signal?.aborted) return interrupted('during the transfer: nothing on the machine changed');
      throw error;
    }
    if (options.signal?.aborted) return interrupted('after the transfer: nothing on the machine changed');
    phase = 'apply';
    progress({ phase });
    const applied = await locked.run(script, (line) => {
      const step = applyPhaseOf(line);
      if (step) progress({ phase: step });
    });
    if (options.signal?.aborted && applied.status !== 0)
      return interrupted(`during the apply, which goes on to its end on ${target.entry.host}: deploy again to see where it stands`);
    const outcome = readApplyOutput(applied.stdout);
    const generation = outcome.generation;
    if (applied.status !== 0 || generation === undefined) {
      result.status = 'failed';
      const unhealthy = outcome.unhealthy.map((report) => report.unit);
      const refused = outcome.refused?.message;
      const refusedByCheck = outcome.refused?.byCheck;
      const step = outcome.phases.at(-1);
      result.error = new HomecloudError(
        unhealthy.length
          ? `unhealthy after the change: ${unhealthy.join(', ')}`
          : refused
            ? `nothing was changed: ${refused}`
            : applied.status === 255
              ? `the connection was lost during the apply, which goes on to its end on the machine (${transportFor(target).describeFailure(applied.stderr)})`
              : `applying failed in phase ${step ?? 'start'}: ${applied.stderr.trim().split('\n').slice(-3).join('; ')}`,
        undefined,
        refusedByCheck
          ? 'fix what the check names, then deploy again'
          : refused
            ? 'move those files away (or into the repository), then deploy again'
            : undefined,
      ).of(target.machine, 'apply');
      result.details = reportDetails(outcome.unhealthy);
      return result;
    }
    result.status = 'deployed';
    result.generation = generation;
    rememberManifest(repo, target.machine, readFileSync(desired.manifest));
    if (storePublic(repo, target.machine, publicOf(target.machine, keyValues(applied.stdout.split('\n'))))) result.publicChanged = true;
    const stillFailed = outcome.stillFailed.map((report) => report.unit);
    if (stillFailed.length) {
      result.status = 'failed';
      result.error = failedUnitsError(target, stillFailed, 'apply', `generation ${generation} is in place, but`);
      result.details = reportDetails(outcome.stillFailed);
    }
  } catch (error) {
    // A bug (a TypeError, say) is thrown on, once the lock is let go.
    result.error = machineFailure(error, target.machine, phase);
    result.status = 'failed';
  } finally {
    await locked?.release();
    result.milliseconds = Date.now() - started;
  }
  return result;
}

function failedUnitsError(target: Target, units: string[], phase: MachinePhase, prefix = 'nothing to change, but'): HomecloudError {
  const message = `${prefix} ${units.length === 1 ? 'a unit it manages is' : 'units it manages are'} failed: ${units.join(', ')}`;
  return new HomecloudError(message, undefined, 'see the lines below; fix the cause, or restart the unit, then deploy again').of(target.machine, phase);
}

/** A deploy with nothing to change still fails while a unit the machine's generation manages is failed. */
async function reportFailedUnits(target: Target, units: string[], result: DeployResult): Promise<void> {
  result.status = 'failed';
  result.error = failedUnitsError(target, units, 'probe');
  const status = await transportFor(target).run(
    units.map((unit) => `systemctl status --no-pager --lines=15 -- ${shellQuote(unit)} 2>&1 | sed 's/^/  /'`).join('\n'),
  );
  result.details = status.stdout.trimEnd();
}

/**
 * Send the tree into a staging generation (unchanged files become hard links
 * to the current generation's), then the manifest and the apply's lists.
 * Files arrive owned by root, whoever built them.
 */
async function transfer(repo: RepoPaths, target: Target, desired: DesiredState, lists: Record<string, string>, signal?: AbortSignal): Promise<void> {
  const local = join(repo.var, 'deploy', target.machine);
  rmSync(local, { recursive: true, force: true });
  mkdirSync(join(local, 'lists'), { recursive: true });
  writeFileSync(join(local, 'manifest.json'), readFileSync(desired.manifest));
  for (const [name, text] of Object.entries(lists)) writeFileSync(join(local, 'lists', name), text);
  const transport = transportFor(target);
  const staging = `${generationsDir}/staging`;
  const tree = await transport.sendTree(desired.tree, `${staging}/tree`, { linkDest: `${generationsDir}/current/tree`, signal });
  if (tree.status !== 0) throw transferError(target, tree);
  const rest = await transport.sendTree(local, staging, { add: true, signal });
  if (rest.status !== 0) throw transferError(target, rest);
}

/** What a failed transfer means: rsync's first error says more than its last lines (a broken pipe that follows). */
function transferError(target: Target, { status, stderr }: ProcessResult): HomecloudError {
  const lines = stderr.trim().split('\n');
  const full = lines.find((line) => /No space left on device|Disk quota exceeded/.test(line));
  const failure = (message: string, hint?: string) =>
    new HomecloudError(`transfer failed, nothing was applied${message}`, undefined, hint).of(target.machine, 'transfer');
  if (full) return failure(`: the machine's disk is full (${full.trim()})`, 'free space on the machine, then deploy again');
  if (status === 255 || /connection unexpectedly closed|Broken pipe|Connection reset/.test(stderr)) {
    return failure(`: the connection to ${target.entry.host} was lost (${lines.at(-1)?.trim()})`, 'deploy again when the machine is reachable');
  }
  const first = lines.find((line) => /^rsync: /.test(line)) ?? lines.at(-1) ?? '';
  return failure(` (rsync exit status ${status}): ${first.trim()}`);
}

export interface Generation {
  generation: number;
  current: boolean;
  meta: Record<string, string>;
}

/** The generations a machine keeps: number, metadata, and which one is current. */
export async function listGenerations(target: Target): Promise<Generation[]> {
  const script = generationsScript();
  const transport = transportFor(target);
  const result = await transport.run(script);
  if (result.status !== 0) throw new HomecloudError(transport.describeFailure(result.stderr)).of(target.machine, 'fetch');
  const generations: Generation[] = [];
  for (const line of result.stdout.split('\n')) {
    const head = /^generation (\d+) (current|-)$/.exec(line);
    if (head) generations.push({ generation: Number(head[1]), current: head[2] === 'current', meta: {} });
    else if (line.startsWith('  ') && generations.length) {
      const [key, ...value] = line.trim().split('=');
      generations[generations.length - 1]!.meta[key!] = value.join('=');
    }
  }
  return generations;
}

/** Fetch a generation's tree and manifest from the target, to deploy it again (a rollback). */
export async function fetchGeneration(repo: RepoPaths, target: Target, generation: number): Promise<DesiredState> {
  const local = join(repo.var, 'rollback', target.machine);
  mkdirSync(local, { recursive: true });
  const result = await transportFor(target).fetchTree(`${generationsDir}/${generation}`, local);
  if (result.status !== 0) {
    throw new HomecloudError(
      /No such file or directory/.test(result.stderr)
        ? `${target.machine} no longer has generation ${generation}`
        : `cannot fetch generation ${generation}: ${result.stderr.trim().split('\n').pop()}`,
      undefined,
      `its generations: homecloud generations ${nameArgument(target.machine)}`,
    ).of(target.machine, 'fetch');
  }
  return { tree: join(local, 'tree'), manifest: join(local, 'manifest.json') };
}

/** Where an apply's output stays on the machine when the connection was lost. */
export const applyOutput = `${stateDir}/apply.out`;
