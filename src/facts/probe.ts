import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { inspectBash } from '../apply/inspect.ts';
import { pathData, rootFunctions } from '../apply/target-paths.ts';
import { HomecloudError } from '../load/errors.ts';
import type { RepoPaths } from '../load/repo.ts';
import { describeSshFailure, runScript, type Target } from '../transport/ssh.ts';
import { bashData, bashFile, targetScript } from '../util/bash-file.ts';
import { sha256 } from '../util/hash.ts';
import { probeCachePath, type ProbeRecord } from './probe-cache.ts';
import { checkProbeFacts, parseProbeFact, probeFactsFunction } from './probe-values.ts';
import { kernelAddresses } from './addresses.ts';
import { addressesName, checkPublic, publicDirectory, storePublic, type PublicItems } from './public.ts';

/** Bash: `publish` prints the public material layers' units made on the machine, and its global addresses (publish.bash). */
export const publishBash = bashFile(new URL('./publish.bash', import.meta.url));
const probeBash = bashFile(new URL('./probe.bash', import.meta.url));

/**
 * Read on the target in one round trip: the probe facts, what the target
 * offers (systemd, apt, rsync), its failed units, its current generation's
 * manifest (only when it is not the copy we have), whether the last apply
 * committed, and the managed paths that changed since the last commit.
 * `knownManifest` is the sha256 of our copy of the manifest. probe.bash says
 * how; the facts are those of probe-values.ts's table.
 */
export function probeScript(knownManifest = ''): string {
  const data = bashData({
    ...pathData('generations_dir', 'pending_file', 'created_dirs_files', 'packages_cache', 'probe_records'),
    public_dir: publicDirectory,
    known_manifest: knownManifest,
  });
  return targetScript(`${data}\n${probeFactsFunction()}`, [rootFunctions, inspectBash, publishBash, probeBash]);
}

/** What the inspect function says of paths on a target (base64 of its NUL-separated outputs). */
export interface Inspection {
  paths: Buffer;
  found: Buffer;
  sums: Buffer;
  /** Those among the paths that homecloud created as directories. */
  created: Buffer;
}

export interface ProbeOutcome {
  machine: string;
  facts?: Record<string, string>;
  error?: HomecloudError;
  /** The target's current generation manifest (JSON text), when it has one. */
  manifest?: string;
  /** Its sha256. */
  manifestSha?: string;
  /** Debian packages installed on the target. */
  packages?: Set<string>;
  /** Whether the target has rsync (a bare Debian may not: deploy installs it first). */
  rsync?: boolean;
  /** The last apply did not commit (it failed or was cut off): its paths were looked at too. */
  pending?: boolean;
  /** Managed paths that are not as the last commit recorded them (hand edits, an apply that did not commit). */
  moved?: Inspection;
  /** Units in the failed state, all of them (managed or not). */
  failedUnits?: string[];
  /** Whether the machine's public material differs from what var/public/ held (other machines' trees may change). */
  publicChanged?: boolean;
  milliseconds: number;
}

/** Where the local copy of a machine's current manifest is kept, so that the probe sends it only when it changed. */
function manifestCopyPath(repo: RepoPaths, machine: string): string {
  return probeCachePath(repo, machine).replace(/\.json$/, '.manifest.json');
}

/** The probe script for a machine, telling it which manifest we have. */
export function probeScriptFor(repo: RepoPaths, machine: string): string {
  const copy = manifestCopyPath(repo, machine);
  return probeScript(existsSync(copy) ? sha256(readFileSync(copy)) : '');
}

/** After a commit: the machine's current manifest is the one just deployed, so the next probe need not send it. */
export function rememberManifest(repo: RepoPaths, machine: string, manifest: Buffer): void {
  writeFileSync(manifestCopyPath(repo, machine), manifest);
}

/** Probe one machine (without taking its lock) and cache what it said under var/facts/. */
export async function probe(repo: RepoPaths, target: Target): Promise<ProbeOutcome> {
  const started = Date.now();
  const result = await runScript(target, probeScriptFor(repo, target.machine));
  if (result.status !== 0)
    return {
      machine: target.machine,
      milliseconds: Date.now() - started,
      error: new HomecloudError(describeSshFailure(target, result.stderr), { file: target.machine }),
    };
  return readProbe(repo, target, result.stdout.split('\n'), Date.now() - started);
}

/** Make sense of the probe's lines: check and cache the facts, keep the manifest copy. */
export function readProbe(repo: RepoPaths, target: Target, lines: string[], milliseconds: number): ProbeOutcome {
  const outcome: ProbeOutcome = { machine: target.machine, milliseconds };
  const facts: Record<string, string> = {};
  const offers: Record<string, string> = {};
  for (const line of lines) {
    const equals = line.indexOf('=');
    if (equals <= 0) continue;
    const key = line.slice(0, equals);
    const value = line.slice(equals + 1);
    if (key.startsWith('ENV_')) facts[key] = parseProbeFact(key, value);
    else offers[key] = value;
  }
  if (offers.HC_SYSTEMD !== 'yes' || offers.HC_APT !== 'yes') {
    const missing = [offers.HC_SYSTEMD !== 'yes' && 'systemd', offers.HC_APT !== 'yes' && 'apt'].filter(Boolean).join(' and ');
    outcome.error = new HomecloudError(
      `${target.entry.host} runs without ${missing}`,
      { file: target.machine },
      'homecloud manages Debian or Ubuntu machines booted with systemd',
    );
    return outcome;
  }
  let published: PublicItems;
  try {
    checkProbeFacts(target.machine, facts);
    published = publicOf(target.machine, offers);
  } catch (error) {
    outcome.error = error as HomecloudError;
    return outcome;
  }
  cacheProbe(repo, target, facts);
  const copy = manifestCopyPath(repo, target.machine);
  let manifest: string | undefined;
  if (offers.HC_MANIFEST !== undefined) {
    manifest = Buffer.from(offers.HC_MANIFEST, 'base64').toString('utf8');
    writeFileSync(copy, manifest);
  } else if (offers.HC_MANIFEST_SHA) {
    manifest = readFileSync(copy, 'utf8');
  } else {
    writeFileSync(copy, '');
  }
  const base64 = (key: string) => Buffer.from(offers[key] ?? '', 'base64');
  return {
    ...outcome,
    facts,
    manifest,
    manifestSha: offers.HC_MANIFEST_SHA,
    // status=package=architecture items.
    packages: new Set((offers.HC_PACKAGES ?? '').split(' ').flatMap((item) => (item.startsWith('installed=') ? [item.split('=')[1]!] : []))),
    rsync: offers.HC_RSYNC === 'yes',
    pending: offers.HC_PENDING === 'yes',
    moved: offers.HC_MOVED
      ? { paths: base64('HC_MOVED'), found: base64('HC_MOVED_FOUND'), sums: base64('HC_MOVED_SUMS'), created: base64('HC_MOVED_CREATED') }
      : undefined,
    publicChanged: storePublic(repo, target.machine, published),
    failedUnits: (offers.HC_FAILED_UNITS ?? '')
      .split('\t')
      .map((line) => line.trim().split(/\s+/)[0]!)
      .filter(Boolean),
  };
}

/** Keep the probed facts under var/facts/; the file is rewritten only when they changed, since every build of the machine depends on it. */
function cacheProbe(repo: RepoPaths, target: Target, facts: Record<string, string>): void {
  const path = probeCachePath(repo, target.machine);
  try {
    const known = JSON.parse(readFileSync(path, 'utf8')) as ProbeRecord;
    if (JSON.stringify(known.inventory) === JSON.stringify(target.entry) && JSON.stringify(known.facts) === JSON.stringify(facts)) return;
  } catch {
    // None yet, or unreadable: written below.
  }
  const record: ProbeRecord = { inventory: target.entry, probedAt: new Date().toISOString(), facts };
  mkdirSync(repo.probeCache, { recursive: true });
  writeFileSync(path, JSON.stringify(record, null, 1) + '\n');
}

/** The public material in `publish`'s lines (KEY=VALUE pairs), checked: what a machine published is data. */
export function publicOf(machine: string, offers: Record<string, string>): PublicItems {
  const published: PublicItems = new Map();
  for (const [key, value] of Object.entries(offers)) {
    if (!key.startsWith('HC_PUBLIC:')) continue;
    const name = key.slice('HC_PUBLIC:'.length);
    const content = Buffer.from(value, 'base64').toString('utf8');
    checkPublic(machine, name, content);
    published.set(name, content);
  }
  const addresses =
    offers.HC_FIB_TRIE === undefined ? (offers.HC_ADDRESSES ?? '').split(' ').filter(Boolean) : kernelAddresses(offers.HC_FIB_TRIE, offers.HC_IF_INET6 ?? '');
  if (addresses.length) {
    const content = addresses.map((address) => `${address}\n`).join('');
    checkPublic(machine, addressesName, content);
    published.set(addressesName, content);
  }
  return published;
}

/** KEY=VALUE lines as a record (the first "=" separates). */
export function keyValues(lines: string[]): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of lines) {
    const equals = line.indexOf('=');
    if (equals > 0) values[line.slice(0, equals)] = line.slice(equals + 1);
  }
  return values;
}
