import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RepoPaths } from '../load/repo.ts';
import { nativeStartTreeSignatures } from '../util/native.ts';
import { holdStamp, readUpToDateStamp } from './up-to-date.ts';

/**
 * Start signing the sources the last build used (the up-to-date stamp's, else state.json's), in native threads, while
 * JavaScript goes on loading the builder (entry.ts, for a plain build, first
 * thing); the build collects the results.
 * A guess: sources that differ this time are signed when the build asks.
 */
export function prefetchSignatures(repo: RepoPaths): void {
  // The up-to-date stamp names the trees of the last build that found nothing to do: its check follows.
  const stamp = readUpToDateStamp(repo);
  if (stamp && Array.isArray(stamp.trees)) {
    holdStamp(repo, stamp);
    nativeStartTreeSignatures(stamp.trees.map(([dir]) => dir));
    return;
  }
  let sources: string[];
  try {
    sources = Object.keys((JSON.parse(readFileSync(join(repo.build, 'state.json'), 'utf8')) as { sources?: object }).sources ?? {});
  } catch {
    return;
  }
  if (sources.length > 0) nativeStartTreeSignatures(sources);
}
