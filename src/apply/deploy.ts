import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Manifest } from '../build/manifest.ts';
import { machineOutput } from '../build/builder.ts';
import { parseTriggers, triggersFile } from '../build/declared.ts';
import { probe } from '../facts/probe.ts';
import { HomecloudError } from '../load/errors.ts';
import type { RepoPaths } from '../load/repo.ts';
import { reconcile, type Plan } from '../plan/reconcile.ts';
import { describeSshFailure, rsyncShell, runScript, type Target } from '../transport/ssh.ts';
import { lazyChildProcess } from '../util/lazy.ts';
import { applyScript, detachedApply } from './script.ts';
import { generationsDir } from './target-paths.ts';

export interface DeployResult {
  machine: string;
  status: 'unchanged' | 'deployed' | 'failed' | 'interrupted';
  plan?: Plan;
  generation?: number;
  error?: HomecloudError;
  /** The unhealthy units' status and journal lines, when the apply failed. */
  details?: string;
  /** What --rollback-on-failure did. */
  rollback?: string;
  milliseconds: number;
}

/** Where a deploy is, for live progress: connect, transfer, then the apply script's phases. */
export interface Progress {
  phase: string;
  /** Files to send, in the transfer phase. */
  files?: number;
}

/** Where the desired tree and manifest are: the build's output, or a generation fetched back for a rollback. */
export interface DesiredState {
  tree: string;
  manifest: string;
}

/** Plan a machine against its live state: one probe round trip gives its current manifest and packages. */
export async function planMachine(repo: RepoPaths, target: Target, output: DesiredState = machineOutput(repo, target.machine)) {
  const probed = await probe(repo, target);
  if (probed.error) throw probed.error;
  if (probed.busy) throw new HomecloudError(`an apply has been running on ${target.entry.host} for more than 5 minutes`, { file: target.machine }, 'see /var/lib/homecloud/apply.out on the machine; deploy again once it has ended');
  const previous = probed.manifest ? (JSON.parse(probed.manifest) as Manifest) : undefined;
  const next = JSON.parse(readFileSync(output.manifest, 'utf8')) as Manifest;
  const read = (path: string) => readFileSync(join(output.tree, path), 'utf8');
  const triggers = Object.keys(next.entries)
    .filter((path) => triggersFile.test(path) && next.entries[path]!.type === 'file')
    .flatMap((path) => parseTriggers(read(path), path));
  const plan = reconcile(previous, next, read, triggers);
  if (probed.rsync === false) await bootstrapRsync(target);
  const installed = probed.packages ?? new Set<string>();
  const install = next.packages.install.filter((name) => !installed.has(name));
  const purge = next.packages.purge.filter((name) => installed.has(name));
  return { previous, next, plan, install, purge, output };
}

/** A bare Debian target without rsync gets it through apt before the first transfer. */
async function bootstrapRsync(target: Target): Promise<void> {
  const result = await runScript(target, 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rsync >/dev/null');
  if (result.status !== 0) {
    throw new HomecloudError(`${target.entry.host} has no rsync, and installing it failed: ${result.stderr.trim().split('\n').pop()}`, { file: target.machine }, 'install rsync on the machine (apt-get install rsync), then deploy again');
  }
}

export interface DeployOptions {
  keep: number;
  commit?: string;
  desired?: DesiredState;
  onProgress?: (progress: Progress) => void;
  /** Ctrl-C: stop before the apply; an apply already running goes on to its end on the target. */
  signal?: AbortSignal;
}

/** Build output -> staging generation on the target (unchanged files hard-linked to the current one) -> one apply script. */
export async function deployMachine(repo: RepoPaths, target: Target, options: DeployOptions): Promise<DeployResult> {
  const started = Date.now();
  const result: DeployResult = { machine: target.machine, status: 'unchanged', milliseconds: 0 };
  const progress = options.onProgress ?? (() => {});
  const interrupted = (when: string) => {
    result.status = 'interrupted';
    result.error = new HomecloudError(`interrupted ${when}`, { file: target.machine });
    return result;
  };
  try {
    if (options.signal?.aborted) return interrupted('before it started: nothing on the machine changed');
    progress({ phase: 'connect' });
    const { previous, next, plan, install, purge, output } = await planMachine(repo, target, options.desired);
    result.plan = plan;
    const nothing = plan.added.length + plan.changed.length + plan.removed.length + install.length + purge.length === 0 && plan.units.length === 0;
    if (nothing) return result;
    if (options.signal?.aborted) return interrupted('before the transfer: nothing on the machine changed');
    progress({ phase: 'transfer', files: plan.added.length + plan.changed.length });
    try {
      await transfer(target, output.tree, output.manifest, options.signal);
    } catch (error) {
      if (options.signal?.aborted) return interrupted('during the transfer: nothing on the machine changed');
      throw error;
    }
    if (options.signal?.aborted) return interrupted('after the transfer: nothing on the machine changed');
    const script = applyScript({
      plan,
      next: next.entries,
      previous: previous?.entries ?? {},
      install,
      purge,
      keep: options.keep,
      meta: { date: new Date().toISOString(), by: process.env.SUDO_USER ?? process.env.USER ?? 'root', commit: options.commit ?? '' },
    });
    progress({ phase: 'apply' });
    const applied = await runScript(target, detachedApply, {
      input: script,
      signal: options.signal,
      onLine: (line) => {
        const phase = /^phase (.+)$/.exec(line)?.[1];
        if (phase) progress({ phase });
      },
    });
    if (options.signal?.aborted && applied.status !== 0) return interrupted(`during the apply, which goes on to its end on ${target.entry.host}: deploy again to see where it stands`);
    const generation = /^generation (\d+)$/m.exec(applied.stdout)?.[1];
    if (applied.status !== 0 || !generation) {
      result.status = 'failed';
      const unhealthy = [...applied.stdout.matchAll(/^unhealthy (.+)$/gm)].map((m) => m[1]);
      const phase = [...applied.stdout.matchAll(/^phase (.+)$/gm)].pop()?.[1];
      result.error = new HomecloudError(
        unhealthy.length
          ? `unhealthy after the change: ${unhealthy.join(', ')}`
          : applied.status === 255
            ? `the connection was lost during the apply, which goes on to its end on the machine (${describeSshFailure(target, applied.stderr)})`
            : `applying failed in phase ${phase ?? 'start'}: ${applied.stderr.trim().split('\n').slice(-3).join('; ')}`,
        { file: target.machine },
      );
      result.details = applied.stdout.split('\n').filter((line) => line.startsWith('  ')).join('\n');
      return result;
    }
    result.status = 'deployed';
    result.generation = Number(generation);
  } catch (error) {
    result.status = 'failed';
    result.error = error instanceof HomecloudError ? error : new HomecloudError(String((error as Error).message ?? error), { file: target.machine });
  } finally {
    result.milliseconds = Date.now() - started;
  }
  return result;
}

/** rsync the tree into a staging generation; unchanged files become hard links to the current generation's. */
function transfer(target: Target, tree: string, manifest: string, signal?: AbortSignal): Promise<void> {
  const ssh = rsyncShell(target);
  const destination = `${target.entry.user}@${target.entry.host}`;
  const staging = `${generationsDir}/staging`;
  const rsync = (args: string[]) =>
    new Promise<void>((resolve, reject) => {
      const child = lazyChildProcess().spawn('rsync', ['-e', ssh, ...args], { stdio: ['ignore', 'ignore', 'pipe'], signal });
      const err: Buffer[] = [];
      child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve() : reject(transferError(target, code, Buffer.concat(err).toString()))));
    });
  // --rsync-path makes the staging directory first; --link-dest is relative to the destination directory.
  return rsync([
    // Compare modification times to the nanosecond: rsync's default (whole seconds) took a file rebuilt within the same second, at the same size, for unchanged.
    '-a', '--delete', '--modify-window=-1',
    `--rsync-path=mkdir -p ${staging} && rsync`,
    `--link-dest=${generationsDir}/current/tree`,
    `${tree}/`, `${destination}:${staging}/tree/`,
  ]).then(() => rsync(['-a', manifest, `${destination}:${staging}/manifest.json`]));
}

/** What a failed transfer means: rsync's first error says more than its last lines (a broken pipe that follows). */
function transferError(target: Target, code: number | null, stderr: string): HomecloudError {
  const lines = stderr.trim().split('\n');
  const full = lines.find((line) => /No space left on device|Disk quota exceeded/.test(line));
  if (full) return new HomecloudError(`transfer failed, nothing was applied: the machine's disk is full (${full.trim()})`, { file: target.machine }, 'free space on the machine, then deploy again');
  if (code === 255 || /connection unexpectedly closed|Broken pipe|Connection reset/.test(stderr)) {
    return new HomecloudError(`transfer failed, nothing was applied: the connection to ${target.entry.host} was lost (${lines.at(-1)?.trim()})`, { file: target.machine }, 'deploy again when the machine is reachable');
  }
  const first = lines.find((line) => /^rsync: /.test(line)) ?? lines.at(-1) ?? '';
  return new HomecloudError(`transfer failed, nothing was applied (rsync exit status ${code}): ${first.trim()}`, { file: target.machine });
}

/** The generations a machine keeps: number, metadata, and which one is current. */
export async function listGenerations(target: Target): Promise<{ generation: number; current: boolean; meta: Record<string, string> }[]> {
  const script = `cd ${generationsDir} 2>/dev/null || exit 0
current=$(readlink current 2>/dev/null || true)
for n in $(ls -1 | grep -E '^[0-9]+$' | sort -n); do printf 'generation %s %s\\n' "$n" "$([ "$n" = "$current" ] && echo current || echo -)"; sed 's/^/  /' "$n/meta" 2>/dev/null || true; done`;
  const result = await runScript(target, script);
  if (result.status !== 0) throw new HomecloudError(describeSshFailure(target, result.stderr), { file: target.machine });
  const generations: { generation: number; current: boolean; meta: Record<string, string> }[] = [];
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
  const ssh = rsyncShell(target);
  const source = `${target.entry.user}@${target.entry.host}:${generationsDir}/${generation}`;
  const result = lazyChildProcess().spawnSync('rsync', ['-a', '--delete', '-e', ssh, `${source}/`, `${local}/`], { encoding: 'utf8' });
  if (result.status !== 0) throw new HomecloudError(`cannot fetch generation ${generation}: ${result.stderr.trim().split('\n').pop()}`, { file: target.machine });
  return { tree: join(local, 'tree'), manifest: join(local, 'manifest.json') };
}
