import { mkdirSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { sha256, writeFileAtomic } from '../util/fs.ts';
import { HomecloudError, describeSystemError } from '../load/errors.ts';
import type { DocumentCache } from '../load/model.ts';
import type { WalkMemory } from './walk.ts';

/** Bumped whenever the build's output for the same input changes. */
export const buildFormat = 'homecloud-build-3';

/** Read on every build: kept small. */
interface StateData {
  format: string;
  /** Parsed documents (inventory, settings) by path, valid while the signature is unchanged. */
  documents: Record<string, [signature: string, value: unknown]>;
  /** Per machine: the input fingerprint its current tree was built from. */
  machines: Record<string, string>;
  /** What the last walk of each source directory saw. */
  walks: Record<string, WalkMemory>;
}

/** Content hashes by path, valid while the file's signature is unchanged: read only when something is rebuilt. */
type Hashes = Record<string, [signature: string, sha256: string]>;

/** homecloud's memory between builds, in var/build/state.json and hashes.json. */
export class BuildState implements DocumentCache {
  private data: StateData;
  private hashes: Hashes | undefined;
  private changed = false;
  private hashesChanged = false;
  private readonly statePath: string;
  private readonly hashesPath: string;

  constructor(buildDir: string) {
    this.statePath = join(buildDir, 'state.json');
    this.hashesPath = join(buildDir, 'hashes.json');
    const data = readJson<StateData>(this.statePath);
    this.data = data?.format === buildFormat ? data : { format: buildFormat, documents: {}, machines: {}, walks: {} };
  }

  /** The sha256 of a file, read only when its signature changed. */
  hash(path: string, signature: string): string {
    const hashes = (this.hashes ??= this.data.format === buildFormat ? (readJson<Hashes>(this.hashesPath) ?? {}) : {});
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
  walkMemory(sourceDir: string): WalkMemory {
    return (this.data.walks[sourceDir] ??= { listings: {} });
  }

  /** A walk saw something new: its memory must be saved. */
  noteWalkChanged(): void {
    this.changed = true;
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
    // Hashes first: state.json names fingerprints whose trees those hashes describe.
    if (this.hashesChanged && this.hashes) writeFileAtomic(this.hashesPath, JSON.stringify(this.hashes));
    if (this.changed) writeFileAtomic(this.statePath, JSON.stringify(this.data));
    this.changed = this.hashesChanged = false;
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

/** A short hash of many parts (change detection, not security). */
export function fingerprintOf(parts: string[]): string {
  return createHash('sha1').update(parts.join('\n\0')).digest('hex');
}
