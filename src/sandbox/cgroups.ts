import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * One cgroup per machine in every hierarchy, on hosts not booted with
 * systemd: nspawn --keep-unit runs a machine in the cgroup it was started in,
 * and machines sharing one fight over it (units fail with 219/CGROUP).
 */
export function hostRunsSystemd(): boolean {
  return existsSync('/run/systemd/system');
}

/**
 * The directories of this machine's cgroup under this process's own: in the
 * hierarchies systemd manages (name=systemd, and the unified one); controller
 * hierarchies such as cpuset refuse processes in a fresh cgroup.
 */
export function machineCgroups(id: string): string[] {
  const mounts = new Map<string, string>();
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const mountPoint = left.split(' ')[4]!;
    const [type, , options] = right.split(' ');
    if (type === 'cgroup2') mounts.set('', mountPoint);
    else if (type === 'cgroup')
      mounts.set(
        options!
          .split(',')
          .filter((o) => o !== 'rw' && o !== 'ro')
          .join(','),
        mountPoint,
      );
  }
  const dirs: string[] = [];
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n')) {
    const [, controllers, path] = line.split(':') as [string, string, string];
    if (controllers !== '' && controllers !== 'name=systemd') continue;
    const mountPoint = mounts.get(controllers);
    if (mountPoint) dirs.push(join(mountPoint, path, 'homecloud-sandbox', id));
  }
  return dirs;
}

/** A shell prefix that moves the shell into the machine's cgroups before it execs nspawn. */
export function enterCgroups(dirs: string[]): string {
  for (const dir of dirs) mkdirSync(dir, { recursive: true });
  return dirs.map((dir) => `echo $$ > '${dir}/cgroup.procs'`).join(' && ');
}

/** Remove a machine's cgroups, the ones its systemd made inside first, once its processes are gone. */
export function removeCgroups(dirs: string[]): void {
  const remove = (dir: string) => {
    try {
      for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) remove(join(dir, entry.name));
      rmdirSync(dir);
    } catch {
      // Already gone, or still being torn down: reused on the next boot.
    }
  };
  for (const dir of dirs) {
    remove(dir);
    try {
      rmdirSync(dirname(dir)); // The sandboxes' parent, once no machine uses it.
    } catch {
      // Other machines still run.
    }
  }
}
