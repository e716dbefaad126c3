import { lstatSync, readdirSync, readlinkSync, statSync, type Dirent, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { HomecloudError, describeSystemError } from '../load/errors.ts';
import type { Source } from '../load/layers.ts';
import type { RepoPaths } from '../load/repo.ts';
import { isInside, realPath } from '../util/fs.ts';
import { fingerprintOf } from '../util/hash.ts';
import { nativeTreeSignatures, nativeWalkTree } from '../util/native.ts';
import { isTemplate, outputName, pinName, ruleFor, type Rule } from './rules.ts';

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
  /** The file whose bytes make the output (the link itself for followed links: reading follows it). */
  contentPath: string;
  /** Change detector of the content. */
  contentSignature: string;
  /** For kept links: the link's target text. */
  linkTarget?: string;
  /** A "!" link or linked template: the output is read through the link (see readThroughLinkCheck). */
  followsLink?: boolean;
}

export interface SourceTree {
  source: Source;
  /** Files and symlinks with their rules (worked out on first use). */
  readonly entries: SourceEntry[];
  /** Every directory of the tree as a destination path, with a flag for `.pin`. */
  readonly directories: Map<string, { pinned: boolean }>;
  /** Changes whenever anything in the tree (or a followed link's target) changes. */
  fingerprint: string;
  /** Whether the walk saw something the previous one did not (its memory must be saved). */
  changed: boolean;
}

/** What a walk leaves for the next one, read on every build: kept small. */
export interface SourceMemory {
  fingerprint?: string;
}

/** What the JavaScript walker leaves for the next one, read only when it runs. */
export interface ListingMemory {
  /** Listings by directory (relative to the source), valid while the directory's signature is unchanged. */
  listings: Record<string, [signature: string, names: string[], kinds: string]>;
  /** mtime, ctime, size, inode and mode of every file in walk order (followed links add their target's), base64. */
  snapshot?: string;
}

/** A source's files and directories as either walker sees them. */
interface Listing {
  directories: string[];
  /** Per file: its directory, name, and the index of its stat numbers (a followed link's target's follow them). */
  files: { dir: string; name: string; at: number; follows: boolean }[];
  /** mtimeMs, ctimeMs, size, ino and mode, five per stat, as in Node's Stats. */
  numbers: ArrayLike<number>;
}

/**
 * Walk a layer or machine directory, reading metadata only. With the native
 * walker one call tells whether anything changed (`signatures` may hold it
 * already, from one call for all sources); the listing itself is made only
 * when a machine that uses the source is rebuilt.
 */
export function walkSource(
  source: Source,
  repo: RepoPaths,
  memory: SourceMemory,
  listingMemory: () => ListingMemory,
  signatures?: Map<string, string | undefined>,
): SourceTree {
  const native = (signatures?.has(source.dir) ? signatures : nativeTreeSignatures([source.dir])).get(source.dir);
  if (native !== undefined) {
    const fingerprint = `native:${native}`;
    const changed = memory.fingerprint !== fingerprint;
    memory.fingerprint = fingerprint;
    let tree: ReturnType<typeof treeFrom> | undefined;
    // A failing native listing (the tree changed meanwhile) falls back to JavaScript, which reports problems properly.
    const walk = () => (tree ??= treeFrom(source, nativeListing(source) ?? listInJavaScript(source, repo, { listings: {} }).listing));
    return {
      source,
      fingerprint,
      changed,
      get entries() {
        return walk().entries;
      },
      get directories() {
        return walk().directories;
      },
    };
  }
  const known = listingMemory();
  const { listing, relisted } = listInJavaScript(source, repo, known);
  const snapshot = Buffer.from(new Float64Array(listing.numbers).buffer).toString('base64');
  const changed = relisted || snapshot !== known.snapshot || memory.fingerprint === undefined;
  if (changed) {
    const names = Object.keys(known.listings)
      .sort()
      .map((rel) => `${rel}\0${known.listings[rel]![1].join('\0')}\0${known.listings[rel]![2]}`);
    known.snapshot = snapshot;
    memory.fingerprint = fingerprintOf([source.dir, ...names, snapshot]);
  }
  const tree = treeFrom(source, listing);
  return {
    source,
    fingerprint: memory.fingerprint!,
    changed,
    get entries() {
      return tree.entries;
    },
    directories: tree.directories,
  };
}

const filesOfTrees = new WeakMap<SourceTree, string[]>();

/** The tree's files, in walk order, each as its path in the source and its signature: what SourceTree.fingerprint sums up, file by file. */
export function treeFiles(tree: SourceTree): string[] {
  let files = filesOfTrees.get(tree);
  if (!files) {
    const prefix = tree.source.dir.length;
    files = tree.entries.map((entry) => `${entry.path.slice(prefix)}\0${entry.contentSignature}`);
    // Every machine that uses the source compares it.
    filesOfTrees.set(tree, files);
  }
  return files;
}

function nativeListing(source: Source): Listing | undefined {
  const walked = nativeWalkTree(source.dir);
  if (!walked) return undefined;
  const listing: Listing = { directories: [], files: [], numbers: walked.numbers };
  let at = 0;
  for (let i = 0; i < walked.paths.length; i++) {
    const rel = walked.paths[i]!;
    const kind = walked.kinds.charCodeAt(i);
    if (kind === 100 /* d */) {
      listing.directories.push(rel);
      continue;
    }
    const slash = rel.lastIndexOf('/');
    const name = rel.slice(slash + 1);
    const follows = kind === 108 /* l */ && followed(name);
    listing.files.push({ dir: source.dir + rel.slice(0, slash), name, at, follows });
    at += follows ? 10 : 5;
  }
  return listing;
}

/** A listing by readdir and lstat; directories are listed again only when their signature moved. */
function listInJavaScript(source: Source, repo: RepoPaths, memory: ListingMemory): { listing: Listing; relisted: boolean } {
  const listing: Listing = { directories: [], files: [], numbers: [] };
  const numbers = listing.numbers as number[];
  const listings: ListingMemory['listings'] = {};
  let relisted = false;
  const pending: string[] = [''];
  while (pending.length > 0) {
    const rel = pending.pop()!;
    const dir = source.dir + rel;
    const known = memory.listings[rel];
    const entry = list(dir, rel, known, source, repo);
    if (!entry) break;
    relisted ||= entry !== known;
    listings[rel] = entry;
    if (rel) listing.directories.push(rel);
    const [, names, kinds] = entry;
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      if (kinds.charCodeAt(i) === 100 /* d */) {
        pending.push(`${rel}/${name}`);
        continue;
      }
      const path = `${dir}/${name}`;
      const stats = lstatOrFail(path, repo);
      if (!stats.isFile() && !stats.isSymbolicLink()) {
        throw new HomecloudError('is not a regular file, directory or symbolic link', { file: repo.display(path) }, 'remove it from the layer: devices, sockets and FIFOs cannot be deployed');
      }
      const at = numbers.length;
      numbers.push(stats.mtimeMs, stats.ctimeMs, stats.size, stats.ino, stats.mode);
      const follows = stats.isSymbolicLink() && followed(name);
      if (follows) {
        const target = followOrFail(path, name, repo);
        numbers.push(target.mtimeMs, target.ctimeMs, target.size, target.ino, target.mode);
      }
      listing.files.push({ dir, name, at, follows });
    }
  }
  relisted ||= Object.keys(listings).length !== Object.keys(memory.listings).length;
  if (relisted) memory.listings = listings;
  return { listing, relisted };
}

/** "!" links and symlinked templates are followed: the output holds the target's content. */
function followed(name: string): boolean {
  return name.startsWith('!') || isTemplate(name);
}

function treeFrom(source: Source, listing: Listing): { entries: SourceEntry[]; directories: Map<string, { pinned: boolean }> } {
  const directories = new Map<string, { pinned: boolean }>();
  for (const rel of listing.directories) directories.set(rel, { pinned: false });
  const prefix = source.dir.length;
  const entries = listing.files.map((file) => {
    const destDir = file.dir.slice(prefix);
    if (file.name === pinName && destDir) directories.get(destDir)!.pinned = true;
    return describeEntry(source, file.dir, destDir, file.name, listing.numbers, file.at, file.follows);
  });
  return { entries, directories };
}

function list(dir: string, rel: string, known: ListingMemory['listings'][string] | undefined, source: Source, repo: RepoPaths): ListingMemory['listings'][string] | undefined {
  let stats: Stats;
  try {
    stats = statSync(dir);
  } catch (error) {
    // A machine may have no directory of its own (only an inventory entry).
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && rel === '' && source.kind === 'machine') return undefined;
    throw new HomecloudError(`cannot read directory: ${describeSystemError(error)}`, { file: repo.display(dir) });
  }
  const signature = `${stats.mtimeMs}:${stats.ctimeMs}:${stats.ino}`;
  if (known && known[0] === signature) return known;
  let dirents: Dirent[];
  try {
    dirents = readdirSync(dir, { withFileTypes: true });
  } catch (error) {
    throw new HomecloudError(`cannot read directory: ${describeSystemError(error)}`, { file: repo.display(dir) });
  }
  dirents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const kinds = dirents.map((d) => (d.isDirectory() ? 'd' : d.isSymbolicLink() ? 'l' : 'f')).join('');
  return [signature, dirents.map((d) => d.name), kinds];
}

function lstatOrFail(path: string, repo: RepoPaths): Stats {
  try {
    return lstatSync(path);
  } catch (error) {
    throw new HomecloudError(`cannot read: ${describeSystemError(error)}`, { file: repo.display(path) });
  }
}

/** A followed link must point to a regular file. */
function followOrFail(path: string, name: string, repo: RepoPaths): Stats {
  const file = repo.display(path);
  const deref = !isTemplate(name);
  let target: Stats;
  try {
    target = statSync(path);
  } catch (error) {
    const text = readlinkSync(path);
    const code = (error as NodeJS.ErrnoException).code;
    throw new HomecloudError(
      code === 'ENOENT' ? `dangling link: its target ${text} does not exist` : `cannot follow the link to ${text}: ${describeSystemError(error)}`,
      { file },
      deref ? 'a "!" link is replaced by its target\'s content: create the target (secrets usually live in facts/) or remove the link' : 'create the target or remove the link',
    );
  }
  if (!target.isFile()) {
    throw new HomecloudError(`links to ${readlinkSync(path)}, which is not a regular file`, { file }, 'a "!" link or a linked template must point to a file');
  }
  return target;
}

/** The change detector of the file whose numbers start at `at`. */
function signatureAt(numbers: ArrayLike<number>, at: number): string {
  return `${numbers[at]}:${numbers[at + 1]}:${numbers[at + 2]}:${numbers[at + 3]}:${numbers[at + 4]}`;
}

function describeEntry(source: Source, dir: string, destDir: string, name: string, numbers: ArrayLike<number>, at: number, follows: boolean): SourceEntry {
  const path = `${dir}/${name}`;
  const mode = numbers[at + 4]!;
  const rule = ruleFor(name, (mode & 0o170000) === 0o120000);
  const dest = `${destDir}/${outputName(name)}`;
  if (rule === 'link') {
    const linkTarget = readlinkSync(path);
    return { source, path, dest, rule, mode: 0o777, contentPath: path, contentSignature: `l${linkTarget}`, linkTarget };
  }
  if (follows) {
    return { source, path, dest, rule, mode: numbers[at + 9]! & 0o7777, contentPath: path, contentSignature: `${signatureAt(numbers, at)}>${signatureAt(numbers, at + 5)}`, followsLink: true };
  }
  return { source, path, dest, rule, mode: mode & 0o7777, contentPath: path, contentSignature: signatureAt(numbers, at) };
}

/**
 * A check that a followed link reads only from the repository (facts/
 * included, wherever it resolves to: homecloud reads it anyway), from the
 * directories of the readOutside setting, or, for the standard layers, from
 * the standard layers. Anything else (a key under ~/.ssh, a file of /etc)
 * would land in a tree that deploy copies to a machine, unnoticed. Links are
 * resolved here, not in the walk: a build with nothing to do pays nothing.
 */
export function readThroughLinkCheck(repo: RepoPaths, readOutside: readonly string[]): (entry: SourceEntry) => void {
  // Directories as written and resolved: the setting may name a link to a directory.
  const allowed = [realPath(repo.root), realPath(repo.facts), ...readOutside.flatMap((dir) => [dir, realPath(dir)])];
  const stdlib = realPath(repo.stdlibLayers);
  return (entry) => {
    if (!entry.followsLink) return;
    const target = realPath(entry.path);
    if (allowed.some((dir) => dir === '/' || isInside(target, dir))) return;
    if (entry.source.origin === 'standard' && isInside(target, stdlib)) return;
    throw new HomecloudError(
      `links to ${target}, outside the repository`,
      { file: repo.display(entry.path) },
      `move the file into the repository (secrets go in facts/), or allow its directory in homecloud.json: "readOutside": [${JSON.stringify(dirname(target))}]`,
    );
  };
}
