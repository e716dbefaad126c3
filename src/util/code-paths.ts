/**
 * The code paths a command took (a build with nothing to do, a quick one, one
 * that renders), for the code cache (cli/code-cache.ts): V8 keeps the code of
 * the functions that ran, so a cache written by one kind of run lacks the
 * others' functions, which every later run of that kind then compiles again.
 * The cache is written again when a run takes a path its runs did not.
 *
 * Each bundle carries its own copy of this module: the set is shared through
 * a global.
 */
const key = Symbol.for('homecloud.codePaths');

/** The paths this process has taken so far. */
export function codePathsTaken(): Set<string> {
  const global = globalThis as { [key]?: Set<string> };
  return (global[key] ??= new Set());
}

export function noteCodePath(path: string): void {
  codePathsTaken().add(path);
}

/** What a rare path's name begins with. */
const rareMark = '~';

/**
 * A path few runs take (a machine laid out in full, which renders its
 * templates for hundreds of milliseconds): its functions are kept out of the
 * caches that the frequent runs deserialize every time.
 */
export function noteRareCodePath(path: string): void {
  codePathsTaken().add(rareMark + path);
}

export function isRareCodePath(path: string): boolean {
  return path.startsWith(rareMark);
}
