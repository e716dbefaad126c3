import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { inspectFunctions } from '../apply/inspect.ts';
import { createdDirsFiles, generationsDir, pendingFile } from '../apply/target-paths.ts';
import { HomecloudError } from '../load/errors.ts';
import type { RepoPaths } from '../load/repo.ts';
import { describeSshFailure, runScript, shellQuote, type Target } from '../transport/ssh.ts';
import { sha256 } from '../util/hash.ts';
import { probeCachePath, type ProbeRecord } from './probe-cache.ts';
import { checkProbeFacts } from './probe-values.ts';
import { addressesName, checkPublic, publicDirectory, storePublic, type PublicItems } from './public.ts';

/** Bash: `publish` prints the public material layers' units made on the machine, and its global addresses (names and contents are checked by the reader). */
export const publishFunction = String.raw`publish() {
  local file addresses='' address
  for file in ${publicDirectory}/*; do
    [ -f "$file" ] && printf 'HC_PUBLIC:%s=%s
' "${'$'}{file##*/}" "$(head -c 65537 "$file" | base64 -w0)"
  done
  if command -v ip >/dev/null; then
    while read -r _ _ _ address _; do addresses+="${'$'}{address%/*} "; done < <(ip -o addr show scope global 2>/dev/null)
  fi
  printf 'HC_ADDRESSES=%s
' "$addresses"
}`;

/**
 * Read on the target in one round trip: the probe facts, what the target
 * offers (systemd, apt, rsync), its failed units, its current generation's
 * manifest (only when it is not the copy we have), whether the last apply
 * committed, and the managed paths that changed since the last commit.
 * `knownManifest` is the sha256 of our copy of the manifest.
 */
export function probeScript(knownManifest = ''): string {
  return String.raw`set -u
export LC_ALL=C
G=${generationsDir}
known_manifest=${shellQuote(knownManifest)}
fact() { printf '%s=%s\n' "$1" "$2"; }
${inspectFunctions}
# Few processes: each costs milliseconds, and a deploy with nothing to do is mostly this.
# os-release is read, not sourced: a value is data.
os_ID='' os_VERSION_ID='' os_VERSION_CODENAME=''
if [ -r /etc/os-release ]; then
  while IFS='=' read -r key value; do
    case $key in ID | VERSION_ID | VERSION_CODENAME) value=${'$'}{value#[\"\']}; printf -v "os_$key" '%s' "${'$'}{value%[\"\']}" ;; esac
  done < /etc/os-release
fi
memory=0
while read -r key value _; do if [ "$key" = MemTotal: ]; then memory=$((value * 1024)); break; fi; done < /proc/meminfo
read -r kernel < /proc/sys/kernel/osrelease
# The installed packages, each with its architecture: dpkg's own is the machine's (what dpkg --print-architecture says, without its process).
# Parsed here, not with awk: one process less each.
packages=$(dpkg-query -W -f='${'$'}{db:Status-Status}=${'$'}{Package}=${'$'}{Architecture} ' 2>/dev/null) || true
arch='' dpkg_item=' installed=dpkg=([^ ]+)'
if [[ " $packages" =~ $dpkg_item ]]; then arch=${'$'}{BASH_REMATCH[1]}; else arch=$(uname -m); fi
# One systemctl: the running systemd's version, and how many units are failed (listed below only when some are).
systemd_version='' failed_count=''
while IFS='=' read -r key value; do
  case $key in Version) systemd_version=$value ;; NFailedUnits) failed_count=$value ;; esac
done < <(systemctl show -p Version -p NFailedUnits 2>/dev/null)
if [ -z "$systemd_version" ]; then systemd_version=$(systemctl --version 2>/dev/null) || true; systemd_version=${'$'}{systemd_version#systemd }; fi
fact ENV_HOSTNAME "$HOSTNAME"
fact ENV_HOSTTYPE "$HOSTTYPE"
fact ENV_OSTYPE "$OSTYPE"
fact ENV_ID "$os_ID"
fact ENV_VERSION_ID "$os_VERSION_ID"
fact ENV_VERSION_CODENAME "$os_VERSION_CODENAME"
fact ENV_NPROC "$(nproc)"
fact ENV_MEMBYTES "$memory"
fact ENV_HOME "$HOME"
fact ENV_KERNEL "$kernel"
fact ENV_ARCH "$arch"
fact ENV_SYSTEMD_VERSION "${'$'}{systemd_version%%[!0-9]*}"
# SSH_CONNECTION is "client address, client port, server address, server port".
read -r _ _ _ ssh_port <<< "${'$'}{SSH_CONNECTION:-}"
fact ENV_SSH_PORT "${'$'}{ssh_port:-}"
has() { if command -v "$2" >/dev/null 2>&1; then fact "$1" yes; else fact "$1" no; fi; }
if [ -d /run/systemd/system ]; then fact HC_SYSTEMD yes; else fact HC_SYSTEMD no; fi
has HC_APT apt-get
has HC_RSYNC rsync
fact HC_PACKAGES "$packages"
failed=''
[ "$failed_count" = 0 ] || failed=$(systemctl list-units --state=failed --plain --no-legend --full 2>/dev/null) || true
fact HC_FAILED_UNITS "${'$'}{failed//$'\n'/$'\t'}"
manifest=$G/current/manifest.json
if [ -f "$manifest" ]; then
  # Its sha256 was written at its commit (older generations: computed).
  sum=''
  [ -f "$manifest.sha256" ] && read -r sum < "$manifest.sha256"
  [ -n "$sum" ] || { sum=$(sha256sum < "$manifest"); sum=${'$'}{sum%% *}; }
  fact HC_MANIFEST_SHA "$sum"
  [ "$sum" = "$known_manifest" ] || fact HC_MANIFEST "$(base64 -w0 < "$manifest")"
fi
[ -e ${pendingFile} ] && fact HC_PENDING yes
${publishFunction}
publish
# Managed paths whose record moved since the last commit, and the paths an
# apply that did not commit touched: what each is now.
paths=$G/current/lists/paths
state=$G/current/state
# The common case, cheaply: nothing pending, and every record as the commit left it.
if ! { [ -f "$state" ] && [ -f "$paths" ] && ! [ -e ${pendingFile} ] && stat_records < "$paths" | cmp -s - "$state"; }; then
  work=$(mktemp -d)
  [ -f "$paths" ] || paths=/dev/null
  [ -f "$state" ] || state=/dev/null
  { cat "$paths"; cat ${pendingFile} 2>/dev/null || true; } | sort -zu | stat_records | sort -z > "$work/now"
  sort -z "$state" | comm -z -3 "$work/now" - | sed -z 's/^\t//' | record_paths | sort -zu > "$work/moved"
  if [ -s "$work/moved" ]; then
    inspect "$work/live" < "$work/moved"
    cat ${createdDirsFiles.join(' ')} 2>/dev/null | sort -zu | comm -z -12 "$work/moved" - > "$work/created" || true
    fact HC_MOVED "$(base64 -w0 < "$work/moved")"
    fact HC_MOVED_FOUND "$(base64 -w0 < "$work/live.found")"
    fact HC_MOVED_SUMS "$(base64 -w0 < "$work/live.sums")"
    fact HC_MOVED_CREATED "$(base64 -w0 < "$work/created")"
  fi
  rm -rf "$work"
fi
exit 0
`;
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
  if (result.status !== 0) return { machine: target.machine, milliseconds: Date.now() - started, error: new HomecloudError(describeSshFailure(target, result.stderr), { file: target.machine }) };
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
    if (key.startsWith('ENV_')) facts[key] = value;
    else offers[key] = value;
  }
  if (offers.HC_SYSTEMD !== 'yes' || offers.HC_APT !== 'yes') {
    const missing = [offers.HC_SYSTEMD !== 'yes' && 'systemd', offers.HC_APT !== 'yes' && 'apt'].filter(Boolean).join(' and ');
    outcome.error = new HomecloudError(`${target.entry.host} runs without ${missing}`, { file: target.machine }, 'homecloud manages Debian or Ubuntu machines booted with systemd');
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
    moved: offers.HC_MOVED ? { paths: base64('HC_MOVED'), found: base64('HC_MOVED_FOUND'), sums: base64('HC_MOVED_SUMS'), created: base64('HC_MOVED_CREATED') } : undefined,
    publicChanged: storePublic(repo, target.machine, published),
    failedUnits: (offers.HC_FAILED_UNITS ?? '').split('\t').map((line) => line.trim().split(/\s+/)[0]!).filter(Boolean),
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
  const addresses = (offers.HC_ADDRESSES ?? '').split(' ').filter(Boolean);
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
