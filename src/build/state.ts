import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { removeFile, writeFileAtomic } from '../util/fs.ts';
import { fileSha256 } from '../util/hash.ts';
import { shortHash } from '../util/short-hash.ts';
import { HomecloudError, describeSystemError } from '../load/errors.ts';
import type { DocumentCache } from '../load/model.ts';
import type { ListingMemory, SourceMemory } from './walk.ts';
import { childPath } from '../util/child-path.ts';
import { buildFormat } from './build-format.ts';

/** Read on every build: kept small. */
interface StateData {
  format: string;
  /** Parsed documents (inventory, settings) by path, valid while the signature is unchanged. */
  documents: Record<string, [signature: string, value: unknown]>;
  /** Per machine: the input fingerprint its current tree was built from. */
  machines: Record<string, string>;
  /** Per machine: the files its templates include (inputs beside its sources). */
  includes?: Record<string, string[]>;
  /** What the last walk of each source directory saw. */
  sources: Record<string, SourceMemory>;
}

/** Directory listings and stat snapshots by source directory: read only when the JavaScript walker runs. */
type Listings = Record<string, ListingMemory>;

/** Content hashes of one source's files by path, valid while the file's signature is unchanged. */
type Hashes = Record<string, [signature: string, sha256: string]>;

/**
 * A source's files as they were at one fingerprint of its tree: per file, in walk order, its path in the source and
 * its signature (treeFiles). One file each in var/build/trees/, read only by a quick build of a machine built from it.
 */
interface TreeRecord {
  dir: string;
  fingerprint: string;
  files: string[];
}

/** How many fingerprints of a source are remembered: machines built a few changes ago still find theirs. */
const treeRecordsKept = 3;

/** One file of hashes per source directory: read only when a machine using it is rebuilt, written only when it changed. */
interface HashBucket {
  dir: string;
  hashes: Hashes;
  /** The fingerprints whose trees are recorded, newest first. */
  trees: string[];
  /** Records read, and records made by this build (written with the bucket); records no longer kept, removed after it. */
  readTrees: Map<string, string[]>;
  newTrees: Map<string, string[]>;
  oldTrees: string[];
  changed: boolean;
}

/** homecloud's memory between builds, in var/build/state.json, hashes/ and trees/. */
export class BuildState implements DocumentCache {
  private data: StateData;
  private readonly buckets = new Map<string, HashBucket>();
  private listings: Listings | undefined;
  private listingsChanged = false;
  private changed = false;
  /** Whether state.json was written by this build format (else its companions are not trusted either). */
  private readonly known: boolean;
  readonly statePath: string;
  private readonly hashesDir: string;
  private readonly treesDir: string;
  private readonly listingsPath: string;

  /** `display` names a file for messages (repository-relative). */
  constructor(
    buildDir: string,
    private readonly display: (path: string) => string = (path) => path,
  ) {
    this.statePath = join(buildDir, 'state.json');
    this.hashesDir = join(buildDir, 'hashes');
    this.treesDir = join(buildDir, 'trees');
    this.listingsPath = join(buildDir, 'listings.json');
    const data = readJson<StateData>(this.statePath);
    this.known = data?.format === buildFormat;
    this.data = this.known ? data! : { format: buildFormat, documents: {}, machines: {}, sources: {} };
  }

  /** The sha256 of a file of the source `sourceDir`, read only when its signature changed. */
  hash(sourceDir: string, path: string, signature: string): string {
    const bucket = this.bucket(sourceDir);
    const known = bucket.hashes[path];
    if (known && known[0] === signature) return known[1];
    let digest: string;
    try {
      digest = fileSha256(path);
    } catch (error) {
      throw new HomecloudError(`cannot read: ${describeSystemError(error)}`, { file: this.display(path) });
    }
    bucket.hashes[path] = [signature, digest];
    bucket.changed = true;
    return digest;
  }

  /** The source's files at an earlier fingerprint of its tree, if remembered (see recordTree). */
  treeAt(sourceDir: string, fingerprint: string): readonly string[] | undefined {
    const bucket = this.bucket(sourceDir);
    if (!bucket.trees.includes(fingerprint)) return undefined;
    const known = bucket.newTrees.get(fingerprint) ?? bucket.readTrees.get(fingerprint);
    if (known) return known;
    const record = readJson<TreeRecord>(this.treePath(sourceDir, fingerprint));
    if (record?.dir !== sourceDir || record.fingerprint !== fingerprint || !Array.isArray(record.files)) return undefined;
    // Every machine that uses the source compares with it.
    bucket.readTrees.set(fingerprint, record.files);
    return record.files;
  }

  /** Remember the source's files at this fingerprint, unless they are already. */
  recordTree(sourceDir: string, fingerprint: string, files: () => string[]): void {
    const bucket = this.bucket(sourceDir);
    if (bucket.trees.includes(fingerprint)) return;
    bucket.newTrees.set(fingerprint, files());
    bucket.trees = [fingerprint, ...bucket.trees];
    bucket.oldTrees.push(...bucket.trees.splice(treeRecordsKept));
    bucket.changed = true;
  }

  private bucket(dir: string): HashBucket {
    let bucket = this.buckets.get(dir);
    if (!bucket) {
      const stored = this.known ? readJson<{ dir: string; hashes: Hashes; trees?: unknown }>(this.bucketPath(dir)) : undefined;
      const own = stored?.dir === dir;
      const trees = own && Array.isArray(stored.trees) ? stored.trees.filter((known) => typeof known === 'string') : [];
      bucket = { dir, hashes: own ? stored.hashes : {}, trees, readTrees: new Map(), newTrees: new Map(), oldTrees: [], changed: false };
      this.buckets.set(dir, bucket);
    }
    return bucket;
  }

  private bucketPath(dir: string): string {
    // Named after the directory, for people; the hash keeps names unique and short.
    return childPath(this.hashesDir, `${basename(dir).slice(0, 40)}-${shortHash(dir)}.json`);
  }

  private treePath(dir: string, fingerprint: string): string {
    return childPath(this.treesDir, `${treePrefix(dir)}${shortHash(fingerprint)}.json`);
  }

  async document<T>(path: string, signature: string, parse: () => Promise<T>): Promise<T> {
    const known = this.data.documents[path];
    if (known && known[0] === signature) return known[1] as T;
    const value = await parse();
    this.data.documents[path] = [signature, value];
    this.changed = true;
    return value;
  }

  /** What the last walk of a source directory saw (the walk updates it in place). */
  sourceMemory(sourceDir: string): SourceMemory {
    return (this.data.sources[sourceDir] ??= {});
  }

  /** Forget the sources not in `used`, their hashes and trees included; whether there were any. */
  forgetSourcesBut(used: ReadonlySet<string>): boolean {
    const unused = Object.keys(this.data.sources).filter((dir) => !used.has(dir));
    const trees = unused.length ? readdirOrEmpty(this.treesDir) : [];
    for (const dir of unused) {
      delete this.data.sources[dir];
      this.buckets.delete(dir);
      removeFile(this.bucketPath(dir));
      for (const name of trees) if (name.startsWith(treePrefix(dir))) removeFile(childPath(this.treesDir, name));
    }
    if (unused.length) this.changed = true;
    return unused.length > 0;
  }

  /** The JavaScript walker's memory of a source directory (the walk updates it in place). */
  listingMemory(sourceDir: string): ListingMemory {
    this.listings ??= this.known ? (readJson<Listings>(this.listingsPath) ?? {}) : {};
    return (this.listings[sourceDir] ??= { listings: {} });
  }

  /** A walk saw something new: its memory must be saved. */
  noteWalkChanged(): void {
    this.changed = true;
    if (this.listings) this.listingsChanged = true;
  }

  /** Machines with a built tree. */
  builtMachines(): string[] {
    return Object.keys(this.data.machines);
  }

  fingerprint(machine: string): string | undefined {
    return this.data.machines[machine];
  }

  setFingerprint(machine: string, fingerprint: string | undefined): void {
    if (fingerprint === undefined) this.setIncludes(machine, []);
    if (this.data.machines[machine] === fingerprint) return;
    if (fingerprint === undefined) delete this.data.machines[machine];
    else this.data.machines[machine] = fingerprint;
    this.changed = true;
  }

  includes(machine: string): readonly string[] {
    return this.data.includes?.[machine] ?? [];
  }

  setIncludes(machine: string, paths: string[]): void {
    const known = this.data.includes?.[machine] ?? [];
    if (known.length === paths.length && known.every((path, i) => path === paths[i])) return;
    this.data.includes ??= {};
    if (paths.length) this.data.includes[machine] = paths;
    else delete this.data.includes[machine];
    this.changed = true;
  }

  /** Write what changed; `usedPaths(dir)` lists a source's current files, to forget hashes of removed ones. */
  save(usedPaths?: (dir: string) => Set<string> | undefined): void {
    const buckets = [...this.buckets.values()].filter((bucket) => bucket.changed);
    if (!this.changed && buckets.length === 0 && !this.listingsChanged) return;
    mkdirSync(this.hashesDir, { recursive: true });
    // Hashes and listings first: state.json names fingerprints that they describe. Trees before the bucket that names them.
    for (const bucket of buckets) {
      const used = usedPaths?.(bucket.dir);
      if (used) for (const path of Object.keys(bucket.hashes)) if (!used.has(path)) delete bucket.hashes[path];
      if (bucket.newTrees.size) mkdirSync(this.treesDir, { recursive: true });
      for (const [fingerprint, files] of bucket.newTrees) {
        if (bucket.trees.includes(fingerprint)) writeFileAtomic(this.treePath(bucket.dir, fingerprint), JSON.stringify({ dir: bucket.dir, fingerprint, files }));
      }
      writeFileAtomic(this.bucketPath(bucket.dir), JSON.stringify({ dir: bucket.dir, hashes: bucket.hashes, trees: bucket.trees }));
      for (const fingerprint of bucket.oldTrees) if (!bucket.trees.includes(fingerprint)) removeFile(this.treePath(bucket.dir, fingerprint));
      bucket.newTrees.clear();
      bucket.oldTrees = [];
      bucket.changed = false;
    }
    if (this.listingsChanged && this.listings) writeFileAtomic(this.listingsPath, JSON.stringify(this.listings));
    if (this.changed) writeFileAtomic(this.statePath, JSON.stringify(this.data));
    this.changed = this.listingsChanged = false;
  }
}

/** What the names of a source's tree records begin with: named after the directory, for people; the hash keeps names unique. */
function treePrefix(dir: string): string {
  return `${basename(dir).slice(0, 40)}-${shortHash(dir)}-`;
}

function readdirOrEmpty(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    // Missing or damaged: start afresh; every machine gets verified.
    return undefined;
  }
}

