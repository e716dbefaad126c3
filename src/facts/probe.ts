import { writeFileSync, mkdirSync } from 'node:fs';
import { HomecloudError } from '../load/errors.ts';
import type { RepoPaths } from '../load/repo.ts';
import { describeSshFailure, runScript, type Target } from '../transport/ssh.ts';
import { applyLock, generationsDir } from '../apply/target-paths.ts';
import { probeCachePath, type ProbeRecord } from './probe-cache.ts';

/**
 * Read on the target in one round trip: the probe facts, what the target
 * offers (systemd, apt, rsync), and its current generation's manifest.
 */
export const probeScript = String.raw`
set -u
# shellcheck source=/dev/null
. /etc/os-release 2>/dev/null || true
fact() { printf '%s=%s\n' "$1" "$2"; }
fact ENV_HOSTNAME "$(hostname)"
fact ENV_HOSTTYPE "$HOSTTYPE"
fact ENV_OSTYPE "$OSTYPE"
fact ENV_ID "${'$'}{ID:-}"
fact ENV_VERSION_ID "${'$'}{VERSION_ID:-}"
fact ENV_VERSION_CODENAME "${'$'}{VERSION_CODENAME:-}"
fact ENV_NPROC "$(nproc)"
fact ENV_MEMBYTES "$(awk '/^MemTotal:/ { print $2 * 1024 }' /proc/meminfo)"
fact ENV_HOME "$HOME"
fact ENV_KERNEL "$(uname -r)"
fact ENV_ARCH "$(dpkg --print-architecture 2>/dev/null || uname -m)"
fact ENV_SYSTEMD_VERSION "$(systemctl --version 2>/dev/null | awk 'NR == 1 { print $2 }')"
has() { command -v "$1" >/dev/null 2>&1 && echo yes || echo no; }
fact HC_SYSTEMD "$([ -d /run/systemd/system ] && echo yes || echo no)"
fact HC_APT "$(has apt-get)"
fact HC_RSYNC "$(has rsync)"
fact HC_PACKAGES "$(dpkg-query -W -f='${'$'}{db:Status-Status} ${'$'}{Package}\n' 2>/dev/null | awk '$1 == "installed" { printf "%s ", $2 }')"
# An apply still running (say, after a Ctrl-C where the deploy ran) finishes first.
if [ -e ${applyLock} ] && ! flock -w 300 ${applyLock} true; then fact HC_BUSY yes; fi
# What is in place: a failed apply's files when there was one since the last commit.
manifest=${generationsDir}/current/manifest.json
[ -f ${generationsDir}/failed/manifest.json ] && manifest=${generationsDir}/failed/manifest.json
[ -f "$manifest" ] && fact HC_MANIFEST "$(base64 -w0 "$manifest")"
exit 0
`;

export interface ProbeOutcome {
  machine: string;
  facts?: Record<string, string>;
  error?: HomecloudError;
  /** The target's current generation manifest (JSON text), when it has one. */
  manifest?: string;
  /** Debian packages installed on the target. */
  packages?: Set<string>;
  /** Whether the target has rsync (a bare Debian may not: deploy installs it first). */
  rsync?: boolean;
  /** An apply was still running on the target after the probe waited 5 minutes for it. */
  busy?: boolean;
  milliseconds: number;
}

/** Probe one machine and cache what it said under var/facts/. */
export async function probe(repo: RepoPaths, target: Target): Promise<ProbeOutcome> {
  const started = Date.now();
  const result = await runScript(target, probeScript);
  const outcome: ProbeOutcome = { machine: target.machine, milliseconds: Date.now() - started };
  if (result.status !== 0) {
    outcome.error = new HomecloudError(describeSshFailure(target, result.stderr), { file: target.machine });
    return outcome;
  }
  const facts: Record<string, string> = {};
  const offers: Record<string, string> = {};
  for (const line of result.stdout.split('\n')) {
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
  const record: ProbeRecord = { inventory: target.entry, probedAt: new Date().toISOString(), facts };
  mkdirSync(repo.probeCache, { recursive: true });
  writeFileSync(probeCachePath(repo, target.machine), JSON.stringify(record, null, 1) + '\n');
  const manifest = offers.HC_MANIFEST ? Buffer.from(offers.HC_MANIFEST, 'base64').toString('utf8') : undefined;
  writeFileSync(probeCachePath(repo, target.machine).replace(/\.json$/, '.manifest.json'), manifest ?? '');
  return { ...outcome, facts, manifest, packages: new Set((offers.HC_PACKAGES ?? '').split(' ').filter(Boolean)), rsync: offers.HC_RSYNC === 'yes', busy: offers.HC_BUSY === 'yes' };
}
