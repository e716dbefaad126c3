import { existsSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HomecloudError } from './errors.ts';
import { childPath } from '../util/child-path.ts';

/** Where things live in a user's repository, and homecloud's own standard layers. */
export class RepoPaths {
  readonly layers: string;
  readonly machines: string;
  readonly facts: string;
  readonly var: string;
  readonly build: string;
  readonly probeCache: string;
  readonly settingsFile: string;
  readonly inventoryFile: string;
  /** With --sandbox: the sandbox's inventory, which overrides inventory.json for the machines it has. */
  sandboxInventory?: string;

  constructor(
    readonly root: string,
    readonly stdlibLayers: string = standardLayersDir(),
  ) {
    this.layers = join(root, 'layers');
    this.machines = join(root, 'machines');
    this.facts = join(root, 'facts');
    this.var = join(root, 'var');
    this.build = join(this.var, 'build');
    this.probeCache = join(this.var, 'facts');
    this.settingsFile = join(root, 'homecloud.json');
    this.inventoryFile = join(root, 'inventory.json');
  }

  machineDir(machine: string): string {
    return childPath(this.machines, machine);
  }

  /** A path as the user should see it: relative to the repository when inside it. */
  display(path: string): string {
    if (path.startsWith(this.root) && path[this.root.length] === sep) return path.slice(this.root.length + 1);
    const rel = relative(this.root, path);
    return rel && !rel.startsWith('..') && !rel.startsWith(sep) ? rel : path;
  }
}

/** The `layers/` directory shipped with homecloud (next to `src/` or `dist/`). */
export function standardLayersDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, 'layers', '_'))) return join(dir, 'layers');
    dir = dirname(dir);
  }
  return join(dir, 'layers');
}

/** The repository that contains `start`: the nearest directory with homecloud.json, inventory.json or machines/. */
export function findRepoRoot(start: string): string {
  let dir = resolve(start);
  for (;;) {
    if (['homecloud.json', 'inventory.json', 'machines'].some((name) => existsSync(join(dir, name)))) return dir;
    const parent = dirname(dir);
    if (parent === dir) {
      throw new HomecloudError(
        `no homecloud repository at ${resolve(start)} or above it`,
        undefined,
        'run homecloud inside a repository (a directory with machines/, inventory.json or homecloud.json), or name one with --repo DIR',
      );
    }
    dir = parent;
  }
}
