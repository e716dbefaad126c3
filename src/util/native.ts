import { createRequire } from 'node:module';
import { join } from 'node:path';
import { standardLayersDir } from '../load/repo.ts';
import { lazyOs } from './lazy.ts';

interface NativeWalker {
  startTreeSignatures(dirs: string[]): void;
  treeSignatures(dirs: string[]): (string | undefined)[];
  walkTree(dir: string): { paths: string[]; kinds: string; numbers: Float64Array } | undefined;
  filesSignature?(paths: string[]): [signature: string, newest: number] | undefined;
  sha256(pathOrData: string | Uint8Array): string | undefined;
  run(program: string, argv: string[], env: string[], cwd?: string): Promise<NativeRunResult>;
  isTerminal?(fd: number): boolean;
  parallelism?(): number;
  findRecords?(path: string, needles: string[]): ([start: number, end: number, text: string] | null)[] | undefined;
  keyStarts?(path: string, needle: string): boolean | undefined;
}

export interface NativeRunResult {
  status: number;
  signal: number;
  stdout: Buffer;
  stderr: Buffer;
}

let loaded: NativeWalker | null | undefined;

/**
 * The optional native walker (native/tree_signature.c, built by `npm run
 * build`): a no-change build then costs one call for all sources instead of
 * a JavaScript stat per file, and hashing needs no node:crypto. Without it
 * (no compiler, or HOMECLOUD_NATIVE=0) JavaScript does the same job, slower.
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

/**
 * Per tree, a hash of every path and stat number in it, or undefined where
 * the JavaScript walker must look (something it will report). Empty without
 * the native walker. The trees are walked in parallel and their listings kept
 * for nativeWalkTree.
 */
export function nativeTreeSignatures(dirs: string[]): Map<string, string | undefined> {
  const global = globalThis as { [handedOverKey]?: Map<string, string | undefined> };
  const handed = global[handedOverKey];
  global[handedOverKey] = undefined;
  // Trees signed a moment ago are not walked again (walking the others forgets their listings: nativeWalkTree walks then).
  const found = new Map(dirs.filter((dir) => handed?.has(dir)).map((dir) => [dir, handed!.get(dir)]));
  const missing = dirs.filter((dir) => !found.has(dir));
  const signatures = missing.length ? walker()?.treeSignatures(missing) : undefined;
  if (signatures) missing.forEach((dir, i) => found.set(dir, signatures[i]));
  return found;
}

/** Shared by the bundles of one process, each of which has its own copy of this module. */
const handedOverKey = Symbol.for('homecloud.treeSignatures');

/**
 * Signatures just taken (by the up-to-date check of `homecloud build`) for the build that follows at once:
 * the next nativeTreeSignatures call takes them instead of walking the same trees again (their listings
 * are still kept for nativeWalkTree). Once only.
 */
export function handOverTreeSignatures(signatures: Map<string, string | undefined>): void {
  (globalThis as { [handedOverKey]?: Map<string, string | undefined> })[handedOverKey] = signatures;
}

/** Begin walking these trees in background threads; nativeTreeSignatures collects the results. */
export function nativeStartTreeSignatures(dirs: string[]): void {
  walker()?.startTreeSignatures(dirs);
}

/**
 * One signature of these paths' stat numbers (links followed), absent ones included, and the latest of their
 * mtimes and ctimes (ms); undefined without the native walker (or one built before it had filesSignature),
 * or when a path cannot be looked at.
 */
export function nativeFilesSignature(paths: string[]): { signature: string; newest: number } | undefined {
  const found = walker()?.filesSignature?.(paths);
  return Array.isArray(found) ? { signature: found[0], newest: found[1] } : undefined;
}

/** The tree's paths (relative, sorted depth-first), kinds (d, f, l) and stat numbers. */
export function nativeWalkTree(dir: string) {
  return walker()?.walkTree(dir) ?? undefined;
}

/** The SHA-256 of a file (given its path) or of bytes; undefined without the native walker or when the file cannot be read. */
export function nativeSha256(pathOrData: string | Uint8Array): string | undefined {
  const native = walker();
  if (!native) return undefined;
  return native.sha256(typeof pathOrData === 'string' || Buffer.isBuffer(pathOrData) ? pathOrData : Buffer.from(pathOrData)) ?? undefined;
}

/** isatty(fd), or undefined without the native walker (or one built before it had isTerminal). */
export function nativeIsTerminal(fd: number): boolean | undefined {
  return walker()?.isTerminal?.(fd);
}

/** The CPUs this process may use: node:os takes 0.4 ms to load just to say it. */
export function availableParallelism(): number {
  return walker()?.parallelism?.() ?? lazyOs().availableParallelism();
}

/** The native reader of files of keyed records (build/keyed-json.ts), if this build of the walker has one. */
export function nativeRecords(): Required<Pick<NativeWalker, 'findRecords' | 'keyStarts'>> | undefined {
  const native = walker();
  return native?.findRecords && native.keyStarts ? (native as Required<NativeWalker>) : undefined;
}

export function hasNativeWalker(): boolean {
  return walker() !== null;
}

/**
 * Run a program (argv[0] is the name it sees) with posix_spawn on a worker thread (no fork of this process),
 * or undefined without the native walker. Rejects with an error whose `code`
 * is ENOENT when the program is not found.
 */
export function nativeRun(program: string, argv: string[], env: Record<string, string>, cwd?: string): Promise<NativeRunResult> | undefined {
  return walker()?.run(
    program,
    argv,
    Object.entries(env).map(([key, value]) => `${key}=${value}`),
    cwd,
  );
}
