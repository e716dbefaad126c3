// What a tool left on the machines, to compare across tools: every path under
// /usr/local with its type, mode, owner and sha256 or link target (homecloud's
// own records live in /var/lib/homecloud, outside it), and the services' state.
import { spawnSync } from 'node:child_process';
import type { DesiredState } from './state.ts';

export interface MachineState {
  /** One line per path under /usr/local, sorted. */
  paths: string[];
  /** `<unit> <active state>` for every service, and the failed units. */
  units: string[];
  /** How many times each service has loaded its configuration since the machine booted. */
  loads: Record<string, number>;
}

const listing = `set -euo pipefail
cd /
find usr/local -printf '%y %m %u:%g %p\\t%l\\n'
echo '--'
find usr/local -type f -print0 | xargs -0r sha256sum`;

function unitReport(state: DesiredState): string {
  const names = state.services.map((s) => s.name).join(' ');
  return `for s in ${names}; do
  printf 'unit %s %s %s\\n' "$s" "$(systemctl is-active "$s" || true)" "$(journalctl -q -u "$s" -o cat | grep -c 'configuration loaded' || true)"
done
systemctl list-units --state=failed --plain --no-legend | sed 's/^/failed /'`;
}

/** Read a machine's deployed state over ssh (`ssh` gives the arguments that reach it). */
export function machineState(ssh: string[], state: DesiredState): MachineState {
  const result = spawnSync('ssh', [...ssh, `bash -c '${listing.replace(/'/g, `'\\''`)}\n${unitReport(state).replace(/'/g, `'\\''`)}'`], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.status !== 0) throw new Error(`reading the deployed state failed (${result.status}): ${result.stderr}`);
  const [find, rest] = result.stdout.split('\n--\n') as [string, string];
  const sums = new Map<string, string>();
  const units: string[] = [];
  const loads: Record<string, number> = {};
  for (const line of rest.split('\n')) {
    const unit = /^unit (\S+) (\S+) (\d+)$/.exec(line);
    if (unit) {
      units.push(`${unit[1]} ${unit[2]}`);
      loads[unit[1]!] = Number(unit[3]);
    } else if (line.startsWith('failed ')) units.push(line);
    else if (line) sums.set(line.slice(66), line.slice(0, 64));
  }
  const paths = find
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [head, target] = line.split('\t') as [string, string];
      const path = head.split(' ').slice(3).join(' ');
      if (head.startsWith('f ')) return `${head} ${sums.get(path) ?? '?'}`;
      return head.startsWith('l ') ? `${head} -> ${target}` : head;
    })
    .sort();
  return { paths, units, loads };
}

/** Lines in which two machines' states differ, as a unified-style list (empty when they are the same). */
export function differences(expected: MachineState, actual: MachineState): string[] {
  const diff = (a: string[], b: string[]) => {
    const left = new Set(a);
    const right = new Set(b);
    return [...a.filter((line) => !right.has(line)).map((line) => `- ${line}`), ...b.filter((line) => !left.has(line)).map((line) => `+ ${line}`)];
  };
  return [...diff(expected.paths, actual.paths), ...diff(expected.units, actual.units)];
}
