import { pathData, rootFunctions } from '../apply/target-paths.ts';
import { errorJson, HomecloudError, type ErrorJson } from '../load/errors.ts';
import { shownName } from '../load/names.ts';
import { driftText, type Drift } from '../plan/live.ts';
import { bashData, bashFile, targetScript } from '../util/bash-file.ts';
import { printable } from './network.ts';
import { table, type colors } from './output.ts';

/**
 * `homecloud status`: what one round trip reads on a machine (statusScript:
 * the deploy's probe, then status.bash), what is made of status.bash's lines
 * (parseStatus), what needs attention (attentionOf) and how it is shown
 * (statusText, statusJson). The probe's own lines are readProbe's, and the
 * drift is liveState's, as plan shows them. What a machine says is data:
 * each value is checked, and text from it is shown through printable().
 */

const statusBash = bashFile(new URL('./status.bash', import.meta.url));

/** The one script run on a machine: `probe` (probeScriptFor's, run in a subshell), then status.bash's reads. */
export function statusScript(probe: string): string {
  // The probe is bash text, which status.bash runs with eval, as lock.bash does.
  const probeData = `# shellcheck disable=SC2016\n${bashData({ probe_script: probe })}`;
  return targetScript(`${bashData(pathData('generations_dir', 'lock_dir'))}\n${probeData}`, [rootFunctions, statusBash]);
}

/** A disk of / at least this full (percent used, as df counts it) needs attention. */
export const diskFullPercent = 90;

/** The generation a machine runs, from its meta file (each field '' when the meta file lacks it). */
export interface DeployedGeneration {
  number: number;
  date: string;
  by: string;
  commit: string;
}

export interface DiskUse {
  /** As df's Use%: used blocks over the blocks a user may use, rounded up. */
  usedPercent: number;
  availableBytes: number;
}

/** What status.bash said. */
export interface StatusReading {
  /** null: never deployed. */
  generation: DeployedGeneration | null;
  rebootRequired: boolean;
  rebootPackages: string[];
  uptimeSeconds: number | null;
  disk: DiskUse | null;
  /** null: apt could not tell. */
  upgrades: number | null;
}

/** A machine as status shows it. */
export interface MachineStatus extends StatusReading {
  machine: string;
  reachable: boolean;
  /** Why it could not be reached (reachable false), or read. */
  error?: HomecloudError;
  /** Every failed unit, managed by homecloud or not. */
  failedUnits: string[];
  /** Managed paths changed on the machine since their commit (liveState's, as plan shows them). */
  drift: Drift[];
  /** The last apply did not commit (it failed, was cut off, or runs now). */
  pendingApply: boolean;
}

const statusPrefix = 'HC_STATUS_';

/** status.bash's lines among the script's output (the probe's lines are left alone); a value that is not what it should be is an error. */
export function parseStatus(lines: string[]): StatusReading {
  const reading: StatusReading = { generation: null, rebootRequired: false, rebootPackages: [], uptimeSeconds: null, disk: null, upgrades: null };
  const meta: Record<string, string> = {};
  let generation: number | undefined;
  const wrong = (key: string, value: string, what: string) =>
    new HomecloudError(
      `the machine's status line ${statusPrefix}${key} is not ${what}: "${printable(value, 80)}"`,
      undefined,
      'a bug in status.bash, or a machine that is not what it says',
    );
  for (const line of lines) {
    if (!line.startsWith(statusPrefix)) continue;
    const equals = line.indexOf('=');
    if (equals < 0) continue;
    const key = line.slice(statusPrefix.length, equals);
    const value = line.slice(equals + 1);
    switch (key) {
      case 'GENERATION':
        if (!/^\d{1,15}$/.test(value)) throw wrong(key, value, 'a generation number');
        generation = Number(value);
        break;
      case 'META': {
        // KEY=VALUE lines, as the apply wrote them; the first one of a key counts.
        const at = value.indexOf('=');
        if (at > 0) meta[value.slice(0, at)] ??= value.slice(at + 1);
        break;
      }
      case 'REBOOT':
        reading.rebootRequired = value === 'yes';
        break;
      case 'REBOOT_PACKAGE': {
        const name = printable(value, 100);
        if (name && !reading.rebootPackages.includes(name)) reading.rebootPackages.push(name);
        break;
      }
      case 'UPTIME':
        if (!/^\d{1,12}(\.\d+)?$/.test(value)) throw wrong(key, value, 'a number of seconds');
        reading.uptimeSeconds = Math.floor(Number(value));
        break;
      case 'DISK':
        reading.disk = diskUse(value);
        if (!reading.disk) throw wrong(key, value, 'four block counts (total, free, available, block size)');
        break;
      case 'UPGRADES':
        if (!/^\d{1,9}$/.test(value)) throw wrong(key, value, 'a count of packages');
        reading.upgrades = Number(value);
        break;
    }
  }
  if (generation !== undefined) reading.generation = { number: generation, date: meta.date ?? '', by: meta.by ?? '', commit: meta.commit ?? '' };
  return reading;
}

/** `stat -f -c '%b %f %a %S'` of a file system as df shows it: the share of the blocks users may use that are used, rounded up. */
function diskUse(value: string): DiskUse | null {
  const match = /^(\d{1,18}) (\d{1,18}) (\d{1,18}) (\d{1,9})$/.exec(value);
  if (!match) return null;
  const [blocks, free, available, blockSize] = match.slice(1).map(Number) as [number, number, number, number];
  if (free > blocks || available > free || blockSize === 0) return null;
  const used = blocks - free;
  return { usedPercent: used + available === 0 ? 0 : Math.ceil((used * 100) / (used + available)), availableBytes: available * blockSize };
}

/** What needs attention on a machine, in words; `severe` ones are shown in red, the others in yellow. */
export interface Attention {
  text: string;
  severe: boolean;
}

export function attentionOf(status: MachineStatus): Attention[] {
  const firstLine = (text: string) => printable(text.split('\n')[0] ?? '', 300);
  if (!status.reachable) return [{ text: `unreachable: ${firstLine(status.error?.message ?? 'no answer')}`, severe: true }];
  const items: Attention[] = [];
  if (status.error) items.push({ text: `cannot read its status: ${firstLine(status.error.message)}`, severe: true });
  for (const unit of status.failedUnits) items.push({ text: `${printable(unit)} is failed`, severe: true });
  if (status.pendingApply) items.push({ text: 'an apply did not commit (it failed, was cut off, or runs now): deploy does it again', severe: false });
  // As plan words it.
  for (const drift of status.drift) items.push({ text: driftText({ ...drift, path: printable(drift.path, 300) }), severe: false });
  if (status.rebootRequired)
    items.push({ text: `reboot required${status.rebootPackages.length ? ` by ${status.rebootPackages.join(', ')}` : ''}`, severe: false });
  if (status.disk && status.disk.usedPercent >= diskFullPercent)
    items.push({ text: `disk of / ${status.disk.usedPercent}% used, ${bytes(status.disk.availableBytes)} free`, severe: true });
  return items;
}

/** A machine with nothing known of it but why: not reached, or not read. */
export function unknownStatus(machine: string, reachable: boolean, error: HomecloudError): MachineStatus {
  return {
    machine,
    reachable,
    error,
    generation: null,
    failedUnits: [],
    drift: [],
    pendingApply: false,
    rebootRequired: false,
    rebootPackages: [],
    uptimeSeconds: null,
    disk: null,
    upgrades: null,
  };
}

export interface StatusJson extends Omit<MachineStatus, 'error'> {
  error?: ErrorJson;
  attention: string[];
}

export function statusJson(status: MachineStatus): StatusJson {
  const { machine, reachable, error, generation, failedUnits, drift, pendingApply, rebootRequired, rebootPackages, uptimeSeconds, disk, upgrades } = status;
  return {
    machine,
    reachable,
    ...(error ? { error: errorJson(error) } : {}),
    generation,
    failedUnits,
    drift,
    pendingApply,
    rebootRequired,
    rebootPackages,
    uptimeSeconds,
    disk,
    upgrades,
    attention: attentionOf(status).map((item) => item.text),
  };
}

type Colors = typeof colors;

/** The table, a line per machine, each followed by what needs attention on it, indented. */
export function statusText(statuses: MachineStatus[], c: Colors): string {
  const header = ['MACHINE', 'STATE', 'GENERATION', 'FAILED', 'DRIFT', 'REBOOT', 'UP', 'DISK', 'UPGRADES'];
  const attention = statuses.map(attentionOf);
  const rows = statuses.map((status, i) => {
    const name = shownName(status.machine);
    if (!status.reachable) return [name, c.red('unreachable')];
    // Read but not understood: nothing of it is known.
    if (status.error) return [name, c.red('ATTENTION')];
    const count = (n: number, paint: (text: string) => string) => (n ? paint(String(n)) : '0');
    const disk = status.disk && `${status.disk.usedPercent}% (${bytes(status.disk.availableBytes)} free)`;
    return [
      name,
      attention[i]!.length ? c.yellow('ATTENTION') : c.green('ok'),
      status.generation ? generationText(status.generation) : c.dim('none'),
      count(status.failedUnits.length, c.red),
      count(status.drift.length, c.yellow),
      status.rebootRequired ? c.yellow('yes') : 'no',
      status.uptimeSeconds === null ? '?' : duration(status.uptimeSeconds),
      !disk ? '?' : status.disk!.usedPercent >= diskFullPercent ? c.red(disk) : disk,
      status.upgrades === null ? '?' : String(status.upgrades),
    ];
  });
  const [head, ...lines] = table(rows, header).split('\n');
  const out = [head!];
  lines.forEach((line, i) => {
    out.push(line);
    for (const item of attention[i]!) out.push(`  ${(item.severe ? c.red : c.yellow)(item.text)}`);
  });
  return out.join('\n');
}

/** "4, 2026-12-02 10:31, alice": the number, when (local time) and by whom. */
export function generationText(generation: DeployedGeneration): string {
  const when = Date.parse(generation.date);
  const date = Number.isNaN(when) ? printable(generation.date, 40) : localMinute(new Date(when));
  return [String(generation.number), date, printable(generation.by, 40)].filter(Boolean).join(', ');
}

function localMinute(date: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())} ${two(date.getHours())}:${two(date.getMinutes())}`;
}

/** "3d 4h", "5h 12m", "42m", "30s". */
export function duration(seconds: number): string {
  const [days, hours, minutes] = [Math.floor(seconds / 86400), Math.floor(seconds / 3600) % 24, Math.floor(seconds / 60) % 60];
  if (days) return `${days}d ${hours}h`;
  if (hours) return `${hours}h ${minutes}m`;
  if (minutes) return `${minutes}m`;
  return `${seconds}s`;
}

/** "12 GiB", "3.4 MiB": binary units, one decimal below 10. */
export function bytes(count: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = count;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 || value >= 10 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}
