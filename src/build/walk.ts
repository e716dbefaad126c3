import { lstatSync, readdirSync, readlinkSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { HomecloudError, describeSystemError } from '../load/errors.ts';
import type { Source } from '../load/layers.ts';
import type { RepoPaths } from '../load/repo.ts';
import { statSignature } from '../util/fs.ts';
import { outputName, pinName, ruleFor, type Rule } from './rules.ts';

/** One file or symlink of a source tree, with what the rules make of it. */
export interface SourceEntry {
  source: Source;
  /** Absolute path of the source file. */
  path: string;
  /** Where it goes on the target: an absolute path. */
  dest: string;
  rule: Rule;
  /** Permission bits of the output (a followed link's target's bits). */
  mode: number;
  /** The file whose bytes make the output (the link's target for followed links). */
  contentPath: string;
  /** Change detector of the file that holds the content. */
  contentSignature: string;
  /** For kept links: the link's target text. */
  linkTarget?: string;
}

export interface SourceTree {
  source: Source;
  entries: SourceEntry[];
  /** Every directory of the tree as a destination path, with a flag for `.pin`. */
  directories: Map<string, { pinned: boolean }>;
  /** Changes whenever anything in the tree (or a followed link's target) changes. */
  fingerprint: string;
}

/** Walk a layer or machine directory; metadata only, no content is read. */
export function walkSource(source: Source, repo: RepoPaths): SourceTree {
  const entries: SourceEntry[] = [];
  const directories = new Map<string, { pinned: boolean }>();
  const parts: string[] = [];
  const pending: [string, string][] = [[source.dir, '/']];
  while (pending.length > 0) {
    const [dir, dest] = pending.pop()!;
    let names;
    try {
      names = readdirSync(dir, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' && dir === source.dir && source.kind === 'machine') break;
      throw new HomecloudError(`cannot read directory: ${describeSystemError(error)}`, { file: repo.display(dir) });
    }
    const info = { pinned: false };
    if (dest !== '/') directories.set(dest, info);
    parts.push(`d${dest}`);
    for (const dirent of names) {
      const name = dirent.name;
      const path = join(dir, name);
      const childDest = dest === '/' ? `/${name}` : `${dest}/${name}`;
      if (dirent.isDirectory()) {
        pending.push([path, childDest]);
        continue;
      }
      if (name === pinName) info.pinned = true;
      const entry = describeEntry(source, repo, path, name, dest, dirent.isSymbolicLink());
      entries.push(entry);
      parts.push(`f${entry.dest}\0${entry.path}\0${entry.contentSignature}\0${entry.linkTarget ?? ''}`);
    }
  }
  parts.sort();
  return { source, entries, directories, fingerprint: parts.join('\n') };
}

function describeEntry(source: Source, repo: RepoPaths, path: string, name: string, destDir: string, isSymlink: boolean): SourceEntry {
  const rule = ruleFor(name, isSymlink);
  const dest = (destDir === '/' ? '/' : `${destDir}/`) + outputName(name);
  const file = repo.display(path);
  let stats: Stats;
  try {
    stats = lstatSync(path);
  } catch (error) {
    throw new HomecloudError(`cannot read: ${describeSystemError(error)}`, { file });
  }
  if (rule === 'link') {
    const linkTarget = readlinkSync(path);
    return { source, path, dest, rule, mode: 0o777, contentPath: path, contentSignature: linkTarget, linkTarget };
  }
  if (stats.isSymbolicLink()) {
    // "!" links and symlinked templates: the output holds the target's content.
    let target: Stats;
    try {
      target = statSync(path);
    } catch (error) {
      const text = readlinkSync(path);
      const code = (error as NodeJS.ErrnoException).code;
      throw new HomecloudError(
        code === 'ENOENT' ? `dangling link: its target ${text} does not exist` : `cannot follow link to ${text}: ${describeSystemError(error)}`,
        { file },
        rule === 'deref' ? 'a "!" link is replaced by its target\'s content: create the target (secrets usually live in facts/) or remove the link' : 'create the target or remove the link',
      );
    }
    if (!target.isFile()) {
      throw new HomecloudError(`links to ${readlinkSync(path)}, which is not a regular file`, { file }, 'a "!" link or a linked template must point to a file');
    }
    return { source, path, dest, rule, mode: target.mode & 0o7777, contentPath: path, contentSignature: `${statSignature(stats)}>${statSignature(target)}` };
  }
  if (!stats.isFile()) {
    throw new HomecloudError('is not a regular file, directory or symbolic link', { file }, 'remove it from the layer: devices, sockets and FIFOs cannot be deployed');
  }
  return { source, path, dest, rule, mode: stats.mode & 0o7777, contentPath: path, contentSignature: statSignature(stats) };
}
