import { createRequire } from 'node:module';
import { join } from 'node:path';
import { standardLayersDir } from '../load/repo.ts';

interface NativeWalker {
  treeSignature(dir: string): string | undefined;
  walkTree(dir: string): { paths: string[]; kinds: string; numbers: Float64Array } | undefined;
}

let loaded: NativeWalker | null | undefined;

/**
 * The optional native walker (native/tree_signature.c, built by `npm run
 * build`): a no-change build then costs one call per source instead of a
 * JavaScript stat per file. Without it (no compiler, or HOMECLOUD_NATIVE=0)
 * the JavaScript walker does the same job, slower.
 */
function walker(): NativeWalker | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (process.env.HOMECLOUD_NATIVE === '0') return loaded;
  try {
    const require = createRequire(import.meta.url);
    loaded = require(join(standardLayersDir(), '..', 'build', 'Release', 'tree_signature.node')) as NativeWalker;
  } catch {
    // Not built: the JavaScript walker is used.
  }
  return loaded;
}

/** A hash of every name and stat number in the tree, or undefined (no walker, or something the JavaScript walker must report). */
export function nativeTreeSignature(dir: string): string | undefined {
  return walker()?.treeSignature(dir) ?? undefined;
}

/** The tree's paths (relative, sorted depth-first), kinds (d, f, l) and stat numbers. */
export function nativeWalkTree(dir: string) {
  return walker()?.walkTree(dir) ?? undefined;
}
