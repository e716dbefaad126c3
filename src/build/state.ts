import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/fs.ts';
import { sha256 } from '../util/hash.ts';
import { HomecloudError, describeSystemError } from '../load/errors.ts';
import type { DocumentCache } from '../load/model.ts';
import type { ListingMemory, SourceMemory } from './walk.ts';

/** Bumped whenever the build's output for the same input changes. */
export const buildFormat = 'homecloud-build-4';

/** Read on every build: kept small. */
interface StateData {
  format: string;
  /** Parsed documents (inventory, settings) by path, valid while the signature is unchanged. */
  documents: Record<string, [signature: string, value: unknown]>;
  /** Per machine: the input fingerprint its current tree was built from. */
  machines: Record<string, string>;
  /** What the last walk of each source directory saw. */
  sources: Record<string, SourceMemory>;
}

/** Directory listings and stat snapshots by source directory: read only when the JavaScript walker runs. */
type Listings = Record<string, ListingMemory>;

/** Content hashes by path, valid while the file's signature is unchanged: read only when something is rebuilt. */
type Hashes = Record<string, [signature: string, sha256: string]>;

/** homecloud's memory between builds, in var/build/state.json and hashes.json. */
export class BuildState implements DocumentCache {
  private data: StateData;
  private hashes: Hashes | undefined;
  private listings: Listings | undefined;
  private listingsChanged = false;
  private changed = false;
  /** Whether state.json was written by this build format (else its companions are not trusted either). */
  private readonly known: boolean;
  private hashesChanged = false;
  private readonly statePath: string;
  private readonly hashesPath: string;
  private readonly listingsPath: string;

  constructor(buildDir: string) {
    this.statePath = join(buildDir, 'state.json');
    this.hashesPath = join(buildDir, 'hashes.json');
    this.listingsPath = join(buildDir, 'listings.json');
    const data = readJson<StateData>(this.statePath);
    this.known = data?.format === buildFormat;
    this.data = this.known ? data! : { format: buildFormat, documents: {}, machines: {}, sources: {} };
  }

  /** The sha256 of a file, read only when its signature changed. */
  hash(path: string, signature: string): string {
    const hashes = (this.hashes ??= this.known ? (readJson<Hashes>(this.hashesPath) ?? {}) : {});
    const known = hashes[path];
    if (known && known[0] === signature) return known[1];
    let content: Buffer;
    try {
      content = readFileSync(path);
    } catch (error) {
      throw new HomecloudError(`cannot read: ${describeSystemError(error)}`, { file: path });
    }
    const digest = sha256(content);
    hashes[path] = [signature, digest];
    this.hashesChanged = true;
    return digest;
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

  fingerprint(machine: string): string | undefined {
    return this.data.machines[machine];
  }

  setFingerprint(machine: string, fingerprint: string | undefined): void {
    if (this.data.machines[machine] === fingerprint) return;
    if (fingerprint === undefined) delete this.data.machines[machine];
    else this.data.machines[machine] = fingerprint;
    this.changed = true;
  }

  /** Write what changed; with `usedPaths`, forget hashes of files no source has any more. */
  save(usedPaths?: () => Set<string>): void {
    if (usedPaths && this.hashes && this.hashesChanged) {
      const used = usedPaths();
      for (const path of Object.keys(this.hashes)) {
        if (!used.has(path)) {
          delete this.hashes[path];
          this.hashesChanged = true;
        }
      }
    }
    if (!this.changed && !this.hashesChanged) return;
    mkdirSync(join(this.statePath, '..'), { recursive: true });
    // Hashes and listings first: state.json names fingerprints that they describe.
    if (this.hashesChanged && this.hashes) writeFileAtomic(this.hashesPath, JSON.stringify(this.hashes));
    if (this.listingsChanged && this.listings) writeFileAtomic(this.listingsPath, JSON.stringify(this.listings));
    if (this.changed) writeFileAtomic(this.statePath, JSON.stringify(this.data));
    this.changed = this.hashesChanged = this.listingsChanged = false;
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

