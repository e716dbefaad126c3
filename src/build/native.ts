import { createRequire } from 'node:module';
import { join } from 'node:path';
import { standardLayersDir } from '../load/repo.ts';

interface NativeWalker {
  treeSignature(dir: string): string | undefined;
}

let loaded: NativeWalker | null | undefined;

/**
 * The optional native tree signature (native/tree_signature.c, built by
 * `npm run build`): a no-change build then costs one call per source instead
 * of a JavaScript stat per file. Without it (no compiler, HOMECLOUD_NATIVE=0)
 * the JavaScript walker does the same job, slower.
 */
export function nativeTreeSignature(dir: string): string | undefined {
  if (loaded === undefined) loaded = load();
  return loaded?.treeSignature(dir) ?? undefined;
}

function load(): NativeWalker | null {
  if (process.env.HOMECLOUD_NATIVE === '0') return null;
  try {
    const require = createRequire(import.meta.url);
    return require(join(standardLayersDir(), '..', 'build', 'Release', 'tree_signature.node')) as NativeWalker;
  } catch {
    return null;
  }
}
