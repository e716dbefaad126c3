import type { Manifest } from '../build/manifest.ts';
import { probe } from '../facts/probe.ts';
import { HomecloudError } from '../load/errors.ts';
import type { RepoPaths } from '../load/repo.ts';
import { unitOf } from '../plan/units.ts';
import { describeSshFailure, runScript, shellQuote, type Target } from '../transport/ssh.ts';
import { createdDirsFile, originalsDir } from './target-paths.ts';

/**
 * Control-Alt-Delete: stop homecloud's units, remove every path the current
 * generation placed (putting back what was there before), reload systemd, and
 * forget the generations: the machine is as its distro left it.
 */
export async function clobber(repo: RepoPaths, target: Target): Promise<{ removed: number; units: string[] }> {
  const probed = await probe(repo, target);
  if (probed.error) throw probed.error;
  const entries = probed.manifest ? (JSON.parse(probed.manifest) as Manifest).entries : {};
  const paths = Object.keys(entries).sort().reverse();
  const files = paths.filter((path) => entries[path]!.type !== 'dir');
  const dirs = paths.filter((path) => entries[path]!.type === 'dir');
  const units = [...new Set(files.map((path) => unitOf(path)).filter((owner) => owner && !owner.dropIn).map((owner) => owner!.unit.replace(/@\./, '@*.')))];
  const quoted = (items: string[]) => items.map(shellQuote).join(' ');
  const script = `set -uo pipefail
O=${originalsDir}
units=(${quoted(units)})
files=(${quoted(files)})
dirs=(${quoted(dirs)})
if ((\${#units[@]})); then systemctl stop "\${units[@]}" 2>/dev/null || true; fi
for path in "\${files[@]}"; do
  rm -f -- "$path"
  if [ -e "$O$path" ] || [ -L "$O$path" ]; then mkdir -p "$(dirname "$path")"; mv -- "$O$path" "$path"; fi
done
# Only directories homecloud made, deepest first.
for dir in "\${dirs[@]}"; do grep -Fxq -- "$dir" ${createdDirsFile} 2>/dev/null && rmdir -- "$dir" 2>/dev/null || true; done
systemctl daemon-reload
systemctl reset-failed 2>/dev/null || true
rm -rf /var/lib/homecloud
echo clobbered
`;
  const result = await runScript(target, script);
  if (result.status !== 0 || !result.stdout.includes('clobbered')) throw new HomecloudError(result.status === 255 ? describeSshFailure(target, result.stderr) : `clobber failed: ${result.stderr.trim()}`, { file: target.machine });
  return { removed: files.length, units };
}
