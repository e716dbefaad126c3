import { readdirSync, statSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';

/**
 * Watch a directory tree, one watcher per directory, set up before this
 * returns: Node's recursive watch on Linux sets its watchers up
 * asynchronously, so a save right after it started could go unseen.
 * Directories made later are watched as they appear.
 */
export function watchTree(root: string, skip: (path: string) => boolean, onChange: (path: string) => void): () => void {
  const watchers = new Map<string, FSWatcher>();
  const add = (dir: string) => {
    if (watchers.has(dir) || skip(dir)) return;
    try {
      watchers.set(
        dir,
        watch(dir, (_event, name) => {
          if (!name) return;
          const path = join(dir, name.toString());
          if (skip(path)) return;
          if (isDirectory(path)) add(path);
          onChange(path);
        }),
      );
      for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) add(join(dir, entry.name));
    } catch {
      // Gone meanwhile, or unreadable: nothing to watch there.
    }
  };
  add(root);
  return () => {
    for (const watcher of watchers.values()) watcher.close();
  };
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
