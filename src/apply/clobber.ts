import type { Manifest } from '../build/manifest.ts';
import { HomecloudError } from '../load/errors.ts';
import type { RepoPaths } from '../load/repo.ts';
import { liveState } from '../plan/live.ts';
import { instancesOf, unitOf } from '../plan/units.ts';
import { describeSshFailure, type Target } from '../transport/ssh.ts';
import { bashData, bashFile, targetScript } from '../util/bash-file.ts';
import { describeHolder, lockMachine } from './session.ts';
import { pathData, restoreFunctions, rootFunctions } from './target-paths.ts';

export interface ClobberOptions {
  waitSeconds: number;
  onWaiting?: (holder: string) => void;
}

/**
 * Control-Alt-Delete: stop homecloud's units, remove every path it placed
 * (the current generation's, and those of an apply that did not commit),
 * putting back what was there before, reload systemd, and forget the
 * generations: the machine is as its distro left it. Under the machine's
 * lock, like a deploy.
 */
export async function clobber(repo: RepoPaths, target: Target, options: ClobberOptions): Promise<{ removed: number; units: string[] }> {
  const locked = await lockMachine(repo, target, {
    command: 'clobber',
    waitSeconds: options.waitSeconds,
    onWaiting: (holder) => options.onWaiting?.(describeHolder(holder)),
  });
  try {
    if (locked.probe.error) throw locked.probe.error;
    const committed = locked.probe.manifest ? (JSON.parse(locked.probe.manifest) as Manifest).entries : {};
    const entries = liveState(committed, locked.probe.moved).entries;
    const paths = Object.keys(entries).sort().reverse();
    const files = paths.filter((path) => entries[path]!.type !== 'dir');
    const dirs = paths.filter((path) => entries[path]!.type === 'dir');
    const units = [
      ...new Set(
        files
          .map((path) => unitOf(path))
          .filter((owner) => owner && !owner.dropIn)
          .map((owner) => instancesOf(owner!.unit)),
      ),
    ];
    const script = clobberScript(files, dirs, units);
    const result = await locked.run(script);
    if (result.status !== 0 || !result.stdout.includes('clobbered'))
      throw new HomecloudError(result.status === 255 ? describeSshFailure(target, result.stderr) : `clobber failed: ${result.stderr.trim()}`, {
        file: target.machine,
      });
    return { removed: files.length, units };
  } finally {
    await locked.release();
  }
}

const clobberBash = bashFile(new URL('./clobber.bash', import.meta.url));

/** Remove what homecloud placed (originals come back), only the directories it made, and its state (clobber.bash). */
export function clobberScript(files: string[], dirs: string[], units: string[]): string {
  const data = bashData({ ...pathData('state_dir', 'originals_dir', 'created_dirs_files'), units, files, dirs });
  return targetScript(data, [rootFunctions, restoreFunctions, clobberBash]);
}
