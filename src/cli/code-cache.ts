import { closeSync, constants, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { Script } from 'node:vm';
import { removeFile, writeFileAtomic } from '../util/fs.ts';
import { lazyOs } from '../util/lazy.ts';
import { codePathsTaken, isRareCodePath } from '../util/code-paths.ts';
import { shortHash } from '../util/short-hash.ts';

/**
 * V8's compiled code for homecloud's bundles, kept between runs: every
 * command compiles its bundles again otherwise (the builder's alone takes
 * about 5 ms here, and each function's first call more). The first run of a
 * bundle writes what V8 compiled by its end
 * (the functions that run did compile) to the user's cache directory; later
 * runs hand it to V8, which checks it against its version, its flags and the
 * source's length, and rejects what does not fit.
 *
 * V8 keeps only the functions that ran, so a cache starts with a line naming
 * the code paths of the runs that wrote it (util/code-paths.ts), and a run
 * that takes another path writes it again, with the new functions too. Every
 * function in a cache is deserialized by every run that loads it: a rare
 * path's (a full layout's) are written only into a cache that did not exist,
 * and the first run without that path removes such a cache, so that the
 * frequent runs (no change, a few files) load only their own.
 *
 * A cache file is code: one is read only when the user running homecloud
 * owns it and nobody else may write it, and its name carries the bundle's
 * size and time, so a changed bundle never meets an old cache. Set
 * HOMECLOUD_CODE_CACHE=0 to compile every time.
 */

interface Loaded {
  script: Script;
  file: string;
  /** The bundle's path. */
  bundle: string;
  /** What became of the bundle's cache file, and the code paths it was written for. */
  cache: 'none' | 'rejected' | 'used';
  paths: Set<string>;
}

/** What a cache file begins with, before the paths it was written for and V8's data. */
const header = 'homecloud code cache:';

type Compile = (this: NodeModule, content: string, filename: string, ...rest: unknown[]) => unknown;

/** Load `entry` (a bundle in `bundles`) and the bundles it requires with the code cache. */
export function loadWithCodeCache(bundles: string, entry: string): void {
  const directory = process.env.HOMECLOUD_CODE_CACHE === '0' ? undefined : cacheDirectory();
  if (directory) installCompiler(bundles, directory);
  const path = join(bundles, entry);
  createRequire(path)(path);
}

/** $XDG_CACHE_HOME/homecloud/code, else ~/.cache/homecloud/code; undefined without either. */
function cacheDirectory(): string | undefined {
  const xdg = process.env.XDG_CACHE_HOME;
  if (xdg?.startsWith('/')) return join(xdg, 'homecloud', 'code');
  try {
    // os.homedir() answers $HOME when it is set: node:os is loaded only when it is not.
    const home = process.env.HOME || lazyOs().homedir();
    return home.startsWith('/') ? join(home, '.cache', 'homecloud', 'code') : undefined;
  } catch {
    return undefined;
  }
}

function installCompiler(bundles: string, directory: string): void {
  const prototype = Module.prototype as unknown as { _compile: Compile };
  const original = prototype._compile;
  const loaded: Loaded[] = [];
  // Flags of its own make V8 reject a good cache: it is then left as it is, for the runs without them.
  const plainFlags = process.execArgv.length === 0 && !process.env.NODE_OPTIONS;
  const timings = process.env.HOMECLOUD_TIMINGS === '1';
  prototype._compile = function (content, filename, ...rest) {
    if (dirname(filename) !== bundles) return original.call(this, content, filename, ...rest);
    const file = join(directory, cacheName(filename));
    const cache = parseCache(readOwnFile(file));
    // A bundle is its module function already (scripts/bundle.mjs): compiled as read, its value is that function.
    const script = new Script(content, { filename, cachedData: cache?.data });
    const rejected = cache !== undefined && script.cachedDataRejected === true;
    const state = !cache ? 'none' : rejected ? 'rejected' : 'used';
    loaded.push({ script, file, bundle: filename, cache: state, paths: state === 'used' && cache ? cache.paths : new Set() });
    if (timings) process.stderr.write(`code cache ${basename(filename)}: ${state}\n`);
    const run = script.runInThisContext() as (...args: unknown[]) => unknown;
    // The bundles require Node's modules and each other by relative path, nothing else of require's.
    const require = (id: string) => this.require(id);
    return run.call(this.exports, this.exports, require, this, filename, dirname(filename));
  };
  process.once('exit', () => {
    const taken = codePathsTaken();
    const tookRare = [...taken].some(isRareCodePath);
    for (const { script, file, bundle, cache, paths } of loaded) {
      if (cache === 'used') {
        // Flags of this run's own make what it would write useless to the runs without them.
        if (!plainFlags) continue;
        // A cache that holds a rare path's functions, loaded by a run that did not take it, goes: the next run writes one without them.
        if (!tookRare && [...paths].some(isRareCodePath)) {
          removeFile(file);
          if (timings) process.stderr.write(`code cache ${basename(bundle)}: removed\n`);
          continue;
        }
        // A run that took a rare path would add that path's functions: the cache stays as it is.
        if (tookRare || [...taken].every((path) => paths.has(path))) continue;
      } else if (cache === 'rejected' && !plainFlags) continue;
      const all = new Set([...paths, ...taken]);
      writeCache(directory, file, bundle, script, all);
      if (timings) process.stderr.write(`code cache ${basename(bundle)}: written for ${[...all].sort().join(', ') || 'no path'}\n`);
    }
  });
}

/**
 * The bundle's name and directory, then its size and modification time: a rebuilt bundle gets a name of its
 * own, and two installs side by side (a release and a checkout) keep a cache each.
 */
function cacheName(bundle: string): string {
  const { size, mtimeMs } = statSync(bundle);
  return `${bundlePrefix(bundle)}${size}-${Math.trunc(mtimeMs)}-${process.version}-${process.arch}`;
}

/** What the names of one install's caches of a bundle begin with. */
function bundlePrefix(bundle: string): string {
  return `${basename(bundle)}-${shortHash(dirname(bundle))}-`;
}

/** The file's bytes when this user owns it and only this user may write it; undefined otherwise. */
function readOwnFile(file: string): Buffer | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    const { uid, mode } = fstatSync(fd);
    if (uid !== process.geteuid?.() || (mode & 0o022) !== 0) return undefined;
    return readFileSync(fd);
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** A cache file's paths and V8's data; undefined for a file without the header (of an older homecloud, or damaged). */
function parseCache(bytes: Buffer | undefined): { paths: Set<string>; data: Buffer } | undefined {
  const end = bytes?.indexOf(10) ?? -1;
  if (!bytes || end < 0 || bytes.toString('latin1', 0, header.length) !== header) return undefined;
  const paths = bytes.toString('latin1', header.length, end).split(' ').filter(Boolean);
  return { paths: new Set(paths), data: bytes.subarray(end + 1) };
}

/** Write the compiled code and remove the caches of the bundle's earlier builds in the same place. */
function writeCache(directory: string, file: string, bundle: string, script: Script, paths: Set<string>): void {
  try {
    mkdirSync(directory, { recursive: true, mode: 0o700 });
    // Spaces pad the line to a multiple of 8 bytes: V8 copies data that does not start 8-byte aligned (the file's buffer does).
    const line = `${header}${[...paths].map((path) => ` ${path}`).join('')}`;
    const padded = line.padEnd(Math.ceil((line.length + 1) / 8) * 8 - 1, ' ');
    writeFileAtomic(file, Buffer.concat([Buffer.from(`${padded}\n`, 'latin1'), script.createCachedData()]), { mode: 0o600 });
    // Another run's file being written (writeFileAtomic's .tmp-PID) is left to it.
    const prefix = bundlePrefix(bundle);
    for (const name of readdirSync(directory)) {
      if (name.startsWith(prefix) && join(directory, name) !== file && !name.includes('.tmp-')) removeFile(join(directory, name));
    }
  } catch {
    // A cache that cannot be written costs the next run its compile time only.
  }
}
