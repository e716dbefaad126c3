import { chmodSync, closeSync, copyFileSync, constants, existsSync, fstatSync, ftruncateSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ancestorsOf, octal, removeFile } from '../util/fs.ts';
import { lazyChildProcess } from '../util/lazy.ts';
import { sha256 } from '../util/hash.ts';
import type { ManifestEntries, ManifestEntry } from './manifest.ts';
import { sameEntry } from './manifest.ts';

/** Where a file's bytes come from: a source file to copy, or rendered data. */
export type FileContent = { copyFrom: string } | { data: Uint8Array };

export interface TreeChanges {
  written: number;
  removed: number;
}

/**
 * Make the directory `tree` hold exactly `desired`. `previous` is what the
 * tree is known to hold; without it the tree is scanned and hashed (after an
 * interrupted build). Unchanged files are not touched, so they keep their mtime.
 */
export function applyTree(
  tree: string,
  previous: ManifestEntries | undefined,
  desired: ManifestEntries,
  contentOf: (path: string) => FileContent,
  /** The only paths that can differ, when the caller knows them. */
  candidates?: string[],
): TreeChanges {
  if (!previous) {
    mkdirSync(tree, { recursive: true });
    chmodSync(tree, 0o755);
  }
  const actual = previous ?? scanTree(tree);
  const changes: TreeChanges = { written: 0, removed: 0 };

  // Remove what should not be there (children before their directories).
  const stale = (candidates ?? Object.keys(actual))
    .filter((path) => actual[path] && !sameKind(actual[path], desired[path]))
    .sort()
    .reverse();
  const removed = new Set(stale);
  // A directory that goes takes everything in it along in one call: a removed layer of thousands of files is one rm per directory.
  const gone = new Set(stale.filter((path) => actual[path]!.type === 'dir'));
  const inGone = (path: string) => ancestorsOf(path).some((dir) => gone.has(dir));
  for (const path of stale) {
    changes.removed++;
    if (inGone(path)) continue;
    const target = tree + path;
    if (actual[path]!.type === 'dir') discard(tree, target);
    else removeFile(target);
  }

  // Directories first (parents before children), then files and links: only what differs.
  const differing = (candidates ?? Object.keys(desired)).filter((path) => desired[path] && !sameEntry(removed.has(path) ? undefined : actual[path], desired[path]));
  const directoriesFirst = [...differing.filter((path) => desired[path]!.type === 'dir').sort(), ...differing.filter((path) => desired[path]!.type !== 'dir')];
  for (const path of directoriesFirst) {
    const want = desired[path]!;
    const have = removed.has(path) ? undefined : actual[path];
    const target = tree + path;
    switch (want.type) {
      case 'dir':
        mkdirSync(target, { recursive: true });
        chmodSync(target, parseInt(want.mode, 8));
        break;
      case 'file':
        if (have?.type === 'file' && have.sha256 === want.sha256) {
          chmodSync(target, parseInt(want.mode, 8));
        } else {
          writeFile(target, contentOf(path), parseInt(want.mode, 8));
          changes.written++;
        }
        break;
      case 'link': {
        const temporary = `${target}.tmp-${process.pid}`;
        removeFile(temporary);
        symlinkSync(want.target, temporary);
        renameSync(temporary, target);
        changes.written++;
        break;
      }
    }
  }
  return changes;
}

function sameKind(a: ManifestEntry | undefined, b: ManifestEntry | undefined): boolean {
  return a !== undefined && b !== undefined && a.type === b.type;
}

/** Written in place: while a tree changes, the machine's `building` marker makes the next build verify it. */
function writeFile(target: string, content: FileContent, mode: number): void {
  if ('data' in content) overwrite(target, content.data);
  else if (statSync(content.copyFrom).size <= smallFile) overwrite(target, readFileSync(content.copyFrom));
  else copyFileSync(content.copyFrom, target, constants.COPYFILE_FICLONE);
  chmodSync(target, mode);
}

/** Files up to this size are copied through memory, larger ones by the kernel (a clone where the filesystem can). */
const smallFile = 1 << 20;

/**
 * The new bytes over the old, then the file cut to their length. Truncating a
 * file to nothing and writing it again makes ext4 write it out on close (its
 * guard for files replaced that way): a few hundred µs a file on some disks.
 */
function overwrite(target: string, data: Uint8Array): void {
  const fd = openSync(target, constants.O_WRONLY | constants.O_CREAT, 0o644);
  try {
    const size = fstatSync(fd).size;
    for (let done = 0; done < data.length; ) done += writeSync(fd, data, done, data.length - done, done);
    if (size > data.length) ftruncateSync(fd, data.length);
  } finally {
    closeSync(fd);
  }
}

/** What a tree really holds, hashed. */
export function scanTree(tree: string): ManifestEntries {
  const entries: ManifestEntries = {};
  const visit = (dir: string, prefix: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const path = `${prefix}/${name}`;
      const full = join(dir, name);
      const stats = lstatSync(full);
      if (stats.isDirectory()) {
        entries[path] = { type: 'dir', mode: octal(stats.mode) };
        visit(full, path);
      } else if (stats.isSymbolicLink()) {
        entries[path] = { type: 'link', target: readlinkSync(full) };
      } else if (stats.isFile()) {
        entries[path] = { type: 'file', mode: octal(stats.mode), sha256: sha256(readFileSync(full)) };
      } else {
        unlinkSync(full);
      }
    }
  };
  visit(tree, '');
  return entries;
}


/** Where a tree's removed directories wait to be deleted: unlinking thousands of files takes seconds on some disks, and nobody needs to wait for it. */
export function trashOf(tree: string): string {
  return `${tree}.trash`;
}

/** Move a directory out of the tree at once; emptyTrash deletes it later, in the background. */
function discard(tree: string, target: string): void {
  const trash = trashOf(tree);
  mkdirSync(trash, { recursive: true });
  try {
    renameSync(target, join(trash, `${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`));
  } catch {
    rmSync(target, { recursive: true, force: true });
  }
}

/** Delete what trees' trash holds, in a process of its own that outlives this one. */
export function emptyTrash(trees: string[]): void {
  const full = trees.map(trashOf).filter((trash) => existsSync(trash));
  if (full.length === 0) return;
  lazyChildProcess().spawn('rm', ['-rf', '--', ...full], { detached: true, stdio: 'ignore' }).unref();
}
