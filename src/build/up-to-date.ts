import { readFileSync } from 'node:fs';
import type { RepoPaths } from '../load/repo.ts';
import { removeFile, writeFileAtomic } from '../util/fs.ts';
import { handOverTreeSignatures, nativeFilesSignature, nativeTreeSignatures } from '../util/native.ts';
import { buildFormat } from './build-format.ts';

/**
 * What a build that found every machine up to date rested on: the signature
 * of every file it read (or its absence) and of every source tree. While all
 * of them hold, a build of every machine finds the same, and a plain
 * `homecloud build` says so without loading the builder. Every build removes
 * the stamp when it starts, so that only the last build's finding is stamped.
 */
export interface UpToDateStamp {
  format: string;
  /** The repository and standard layers it was made for. */
  root: string;
  stdlib: string;
  /** The machines of that build, in its order. */
  machines: string[];
  /** The files it read (or looked for), and one native signature of their stat numbers or absence. */
  files: string[];
  filesSignature: string;
  /** Source directory -> native tree signature. */
  trees: [string, string][];
}

function stampPath(repo: RepoPaths): string {
  return `${repo.build}/up-to-date.json`;
}

export function removeUpToDateStamp(repo: RepoPaths): void {
  try {
    removeFile(stampPath(repo));
  } catch {
    // A var/build/ this user cannot change: nor can the build change what the stamp names, whose signatures still decide.
  }
}

/**
 * Stamp the files' signatures as they are now, and the trees' as the build took them. None when a file
 * changed after the build began (`since`, Date.now()): the build may have read it before. Nor shortly
 * before: file times have the kernel's clock tick as their grain, so a file written again in the tick it
 * was read in could keep its signature (git's "racy clean" entries).
 */
export function writeUpToDateStamp(repo: RepoPaths, stamp: { machines: string[]; files: string[]; trees: [string, string][] }, since: number): void {
  const files = nativeFilesSignature(stamp.files);
  if (!files || files.newest > since - 50) return;
  const whole: UpToDateStamp = { format: buildFormat, root: repo.root, stdlib: repo.stdlibLayers, ...stamp, filesSignature: files.signature };
  writeFileAtomic(stampPath(repo), JSON.stringify(whole));
}

/** The stamp as it is on disk, if there is one that parses. */
export function readUpToDateStamp(repo: RepoPaths): UpToDateStamp | undefined {
  try {
    return JSON.parse(readFileSync(stampPath(repo), 'utf8')) as UpToDateStamp;
  } catch {
    return undefined;
  }
}

/** Shared by the bundles of one process, each of which has its own copy of this module. */
const heldKey = Symbol.for('homecloud.upToDateStamp');

/** Keep the stamp just read (to start walking its trees early, prefetch.ts) for the check that follows at once: taken once. */
export function holdStamp(repo: RepoPaths, stamp: UpToDateStamp): void {
  (globalThis as { [heldKey]?: [string, UpToDateStamp] })[heldKey] = [stampPath(repo), stamp];
}

function takeHeldStamp(repo: RepoPaths): UpToDateStamp | undefined {
  const global = globalThis as { [heldKey]?: [string, UpToDateStamp] };
  const held = global[heldKey];
  global[heldKey] = undefined;
  return held?.[0] === stampPath(repo) ? held[1] : undefined;
}

/**
 * The machines of the stamped build when nothing it rested on has changed
 * since, else undefined (no stamp, another repository or homecloud, any
 * signature different, or a tree the native walker cannot sign).
 */
export function stampedUpToDate(repo: RepoPaths): string[] | undefined {
  const held = takeHeldStamp(repo);
  // --sandbox reaches other hosts than the stamped build's inventory.
  if (repo.sandboxInventory) return undefined;
  const stamp = held ?? readUpToDateStamp(repo);
  if (!stamp) return undefined;
  if (stamp.format !== buildFormat || stamp.root !== repo.root || stamp.stdlib !== repo.stdlibLayers) return undefined;
  if (!Array.isArray(stamp.machines) || !Array.isArray(stamp.files) || !Array.isArray(stamp.trees) || stamp.trees.length === 0) return undefined;
  if (typeof stamp.filesSignature !== 'string' || nativeFilesSignature(stamp.files)?.signature !== stamp.filesSignature) return undefined;
  const signatures = nativeTreeSignatures(stamp.trees.map(([dir]) => dir));
  if (stamp.trees.every(([dir, signature]) => signatures.get(dir) === signature)) return stamp.machines;
  // A source changed: the build that follows has its trees signed.
  handOverTreeSignatures(signatures);
  return undefined;
}
