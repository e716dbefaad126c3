import { chmodSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** Directories 0755 whatever the umask: rsync -a copies a source directory's mode to the target. */
function makeParents(path: string): void {
  const dir = dirname(path);
  const made = mkdirSync(dir, { recursive: true });
  if (!made) return;
  for (let d = dir; d.length >= made.length; d = dirname(d)) chmodSync(d, 0o755);
}

/** A file with exactly this mode (the umask does not apply). */
export function writeText(path: string, content: string, mode = 0o644): void {
  makeParents(path);
  writeFileSync(path, content);
  chmodSync(path, mode);
}

export function writeLink(path: string, target: string): void {
  makeParents(path);
  rmSync(path, { force: true });
  symlinkSync(target, path);
}
