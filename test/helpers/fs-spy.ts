import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

/** fs functions that read a file's content or a directory's listing. */
const readers = ['readFileSync', 'readdirSync', 'openSync', 'copyFileSync'] as const;
/** fs functions that change something on disk. */
const writers = [
  'writeFileSync',
  'appendFileSync',
  'renameSync',
  'copyFileSync',
  'mkdirSync',
  'rmSync',
  'rmdirSync',
  'unlinkSync',
  'symlinkSync',
  'chmodSync',
  'utimesSync',
  'lutimesSync',
] as const;

export interface FsCalls {
  /** `name path` of every content read (readFileSync, readdirSync, openSync, copyFileSync source). */
  reads: string[];
  /** `name path` of every change. */
  writes: string[];
}

/**
 * Record the synchronous fs calls made while `body` runs. The source imports
 * named functions from node:fs; syncBuiltinESMExports makes those bindings
 * see the wrappers. `fail` may throw to simulate a crash at a given call.
 */
export async function spyFs<T>(body: () => Promise<T>, fail?: (name: string, path: string) => void): Promise<{ result: T; calls: FsCalls }> {
  const calls: FsCalls = { reads: [], writes: [] };
  const saved = new Map<string, unknown>();
  const target = fs as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const name of new Set<string>([...readers, ...writers])) {
    const original = target[name]!;
    saved.set(name, original);
    target[name] = (...args: unknown[]) => {
      const path = String(args[0]);
      if ((readers as readonly string[]).includes(name)) calls.reads.push(`${name} ${path}`);
      if ((writers as readonly string[]).includes(name))
        calls.writes.push(`${name} ${name === 'copyFileSync' || name === 'renameSync' || name === 'symlinkSync' ? String(args[1]) : path}`);
      fail?.(name, path);
      return original(...args);
    };
  }
  syncBuiltinESMExports();
  try {
    return { result: await body(), calls };
  } finally {
    for (const [name, original] of saved) target[name] = original as (...args: unknown[]) => unknown;
    syncBuiltinESMExports();
  }
}
