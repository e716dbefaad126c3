import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { run } from '../util/run.ts';
import type { SandboxPaths } from './paths.ts';

/** How machines are cloned from the base image. */
export type CloneMethod = 'btrfs snapshot' | 'reflink copy' | 'copy';

/**
 * Machine root directories, each a copy-on-write clone of the base image: a
 * btrfs file system in a loop-mounted file (a snapshot takes a fraction of a
 * second), else reflink copies, else plain copies.
 */
export class Pool {
  method: CloneMethod = 'copy';

  constructor(private readonly paths: SandboxPaths) {}

  /** Mount the pool (making it the first time); says which clone method is in use. */
  open(): CloneMethod {
    mkdirSync(this.paths.pool, { recursive: true });
    if (this.mounted()) return (this.method = 'btrfs snapshot');
    if (!existsSync(this.paths.poolImage)) {
      run('truncate', ['-s', '16G', this.paths.poolImage]);
      if (run('mkfs.btrfs', ['-q', this.paths.poolImage], { check: false }).status !== 0) return (this.method = this.fallback());
    }
    if (run('mount', ['-o', 'loop,compress=zstd:1', this.paths.poolImage, this.paths.pool], { check: false }).status !== 0)
      return (this.method = this.fallback());
    return (this.method = 'btrfs snapshot');
  }

  private fallback(): CloneMethod {
    const probe = join(this.paths.home, '.reflink-probe');
    run('sh', ['-c', `echo x > '${probe}'`]);
    const reflink = run('cp', ['--reflink=always', probe, `${probe}.copy`], { check: false }).status === 0;
    run('rm', ['-f', probe, `${probe}.copy`]);
    return reflink ? 'reflink copy' : 'copy';
  }

  mounted(): boolean {
    return run('mountpoint', ['-q', this.paths.pool], { check: false }).status === 0;
  }

  /** The base image inside the pool (a subvolume on btrfs), copied in once. */
  ensureBase(imageRoot: string, key: string): string {
    const base = join(this.paths.pool, 'images', key);
    if (existsSync(join(base, 'etc/os-release'))) return base;
    mkdirSync(join(this.paths.pool, 'images'), { recursive: true });
    const building = `${base}.building`;
    this.remove(building);
    if (this.method === 'btrfs snapshot') run('btrfs', ['-q', 'subvolume', 'create', building]);
    else mkdirSync(building);
    run('cp', ['-a', '--reflink=auto', `${imageRoot}/.`, building]);
    run('mv', [building, base]);
    return base;
  }

  clone(base: string, name: string): string {
    const target = this.paths.machineDir(name);
    mkdirSync(join(this.paths.pool, 'machines'), { recursive: true });
    this.remove(target);
    if (this.method === 'btrfs snapshot') run('btrfs', ['-q', 'subvolume', 'snapshot', base, target]);
    else run('cp', ['-a', this.method === 'reflink copy' ? '--reflink=always' : '--reflink=auto', base, target]);
    return target;
  }

  /**
   * Remove a machine directory. On btrfs it is a subvolume, and what ran in it may have made subvolumes inside it
   * (systemd-tmpfiles makes /var/lib/machines and /var/lib/portables subvolumes in a booted machine; containers clone
   * into them): `subvolume delete` refuses a subvolume that holds others and rm does not cross into them, so those
   * go first, each the same way.
   */
  remove(dir: string): void {
    // systemd-nspawn's lock beside the directory, left when it was killed.
    rmSync(join(dirname(dir), `.#${basename(dir)}.lck`), { force: true });
    if (!existsSync(dir)) return;
    if (this.method === 'btrfs snapshot') {
      if (run('btrfs', ['-q', 'subvolume', 'delete', dir], { check: false }).status === 0) return;
      for (const nested of nestedSubvolumes(dir)) this.remove(nested);
      if (run('btrfs', ['-q', 'subvolume', 'delete', dir], { check: false }).status === 0) return;
    }
    run('rm', ['-rf', '--one-file-system', dir]);
  }

  /** Machine directories present in the pool. */
  machines(): string[] {
    try {
      return readdirSync(join(this.paths.pool, 'machines')).filter((name) => !name.startsWith('.'));
    } catch {
      return [];
    }
  }

  /** Unmount and free the loop device (also one a crashed run left); the pool file stays for next time. */
  close(): void {
    if (this.mounted()) run('umount', [this.paths.pool]);
    if (!existsSync(this.paths.poolImage)) return;
    // The kernel lets go of a loop device a moment after the unmount (btrfs closes it asynchronously): detach until it is
    // gone. Machines of another sandbox booted meanwhile may hold it longer (their mount namespaces copied the pool, on a
    // host whose / is not shared, as systemd would make it): detached, it then clears itself when they stop.
    const deadline = Date.now() + 1000;
    for (;;) {
      const attached = run('losetup', ['--noheadings', '--output', 'NAME', '--associated', this.paths.poolImage], { check: false })
        .stdout.split('\n')
        .filter(Boolean);
      if (attached.length === 0 || Date.now() > deadline) return;
      for (const device of attached) run('losetup', ['--detach', device.trim()], { check: false });
      run('sleep', ['0.05']);
    }
  }
}

/** The subvolumes directly inside a directory of a btrfs file system: directories with inode 256, each its own file system to find. */
export function nestedSubvolumes(dir: string): string[] {
  const found = run('find', [dir, '-mindepth', '1', '-xdev', '-type', 'd', '-inum', '256', '-print0'], { check: false });
  return found.stdout.split('\0').filter(Boolean);
}
