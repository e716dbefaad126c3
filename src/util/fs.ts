import { closeSync, fsyncSync, lstatSync, openSync, realpathSync, renameSync, statSync, unlinkSync, writeFileSync, type Stats } from 'node:fs';
import { sep } from 'node:path';

/** A cheap change detector for a file: any write, chmod, rename or replace changes it. */
export function statSignature(stats: Stats): string {
  return `${stats.mtimeMs}:${stats.ctimeMs}:${stats.size}:${stats.ino}:${stats.mode}`;
}

/** The statSignature of what is at a path (links followed), or undefined when nothing is. */
export function signatureOf(path: string): string | undefined {
  try {
    // A missing file is common (facts/<machine>.env): no exception made for it, they cost.
    const stats = statSync(path, { throwIfNoEntry: false });
    return stats && statSignature(stats);
  } catch {
    return undefined;
  }
}

/** Replace a file in one step, so that readers see the old or the new content, never a mix. */
export function writeFileAtomic(path: string, data: string | Uint8Array, options: { mode?: number; sync?: boolean } = {}): void {
  const temporary = `${path}.tmp-${process.pid}`;
  writeFileSync(temporary, data, { mode: options.mode ?? 0o644 });
  if (options.sync) {
    const fd = openSync(temporary, 'r');
    fsyncSync(fd);
    closeSync(fd);
  }
  renameSync(temporary, path);
}

/**
 * Remove a file or link if it is there. Not rmSync: its first call loads Node's
 * recursive remover, most of a millisecond of a short build.
 */
export function removeFile(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

export function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/** The resolved path, or the path itself when it cannot be resolved. */
export function realPath(path: string): string {
  try {
    return realpathSync.native(path);
  } catch {
    return path;
  }
}

export function isInside(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir + sep);
}

/** The directories above an absolute path, nearest first: `/a/b/c` -> `/a/b`, `/a`. */
export function ancestorsOf(path: string): string[] {
  const dirs: string[] = [];
  for (let slash = path.lastIndexOf('/'); slash > 0; slash = path.lastIndexOf('/', slash - 1)) dirs.push(path.slice(0, slash));
  return dirs;
}

/** Whether anything is at a path, a dangling link included (lstat, not stat). */
export function lstatExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
