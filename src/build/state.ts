import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256, writeFileAtomic } from '../util/fs.ts';
import { HomecloudError, describeSystemError } from '../load/errors.ts';
import type { DocumentCache } from '../load/model.ts';

/** Bumped whenever the build's output for the same input changes. */
export const buildFormat = 'homecloud-build-1';

interface StateData {
  format: string;
  /** Content hashes by path, valid while the file's signature is unchanged. */
  hashes: Record<string, [signature: string, sha256: string]>;
  /** Parsed documents (inventory, settings) by path, valid while the signature is unchanged. */
  documents: Record<string, [signature: string, value: unknown]>;
  /** Per machine: the input fingerprint its current tree was built from. */
  machines: Record<string, { fingerprint: string }>;
}

/** homecloud's memory between builds, in var/build/state.json. */
export class BuildState implements DocumentCache {
  private data: StateData;
  private changed = false;
  readonly path: string;

  constructor(buildDir: string) {
    this.path = join(buildDir, 'state.json');
    this.data = load(this.path);
  }

  get dirty(): boolean {
    return this.changed;
  }

  /** The sha256 of a file, read only when its signature changed. */
  hash(path: string, signature: string): string {
    const known = this.data.hashes[path];
    if (known && known[0] === signature) return known[1];
    let content: Buffer;
    try {
      content = readFileSync(path);
    } catch (error) {
      throw new HomecloudError(`cannot read: ${describeSystemError(error)}`, { file: path });
    }
    const digest = sha256(content);
    this.data.hashes[path] = [signature, digest];
    this.changed = true;
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

  fingerprint(machine: string): string | undefined {
    return this.data.machines[machine]?.fingerprint;
  }

  setFingerprint(machine: string, fingerprint: string | undefined): void {
    if (this.data.machines[machine]?.fingerprint === fingerprint) return;
    if (fingerprint === undefined) delete this.data.machines[machine];
    else this.data.machines[machine] = { fingerprint };
    this.changed = true;
  }

  /** Forget hashes of files no build used this time, then write if anything changed. */
  save(usedPaths?: Set<string>): void {
    if (usedPaths) {
      for (const path of Object.keys(this.data.hashes)) {
        if (!usedPaths.has(path)) {
          delete this.data.hashes[path];
          this.changed = true;
        }
      }
    }
    if (!this.changed) return;
    mkdirSync(join(this.path, '..'), { recursive: true });
    writeFileAtomic(this.path, JSON.stringify(this.data));
    this.changed = false;
  }
}

function load(path: string): StateData {
  try {
    const data = JSON.parse(readFileSync(path, 'utf8')) as StateData;
    if (data.format === buildFormat) return data;
  } catch {
    // Missing or damaged: start afresh, every machine gets verified.
  }
  return { format: buildFormat, hashes: {}, documents: {}, machines: {} };
}

export function fingerprintOf(parts: string[]): string {
  return sha256(parts.join('\n\0'));
}
