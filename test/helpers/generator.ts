import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { projectRoot } from './repo.ts';

/** The base layer's bash libraries that every generator sources, by path under layers/. */
export const baseLibraries = ['_/usr/local/lib/homecloud/lib.bash', '_/usr/local/lib/homecloud/generator.bash'];

/** A machine of a fleet directory: what src/build/fleet.ts writeFleet writes for it. */
export interface FleetFixture {
  /** Its layers; by default the base layer and the generator's own. */
  layers?: string[];
  /** How homecloud reaches it; by default `<machine>.example.net`. */
  address?: string;
  /** Its `offer` lines of its last build, as key and value. */
  offers?: [string, string][];
  /** Its public material, public/<name> -> content as written. */
  public?: Record<string, string>;
}

export interface GeneratorRun {
  /** The layer whose generator runs: layers/<layer>/usr/local/opt/initd/generators/<generator>. */
  layer: string;
  /** The generator's name, when the layer has more than one; by default the layer's. */
  generator?: string;
  /** The tree's inputs, by their path under / (leading slash or not). */
  files?: Record<string, string>;
  /** The bash libraries copied into the tree, by path under layers/ (the part after the layer is the path under /). */
  libraries?: string[];
  /** HOMECLOUD_MACHINE. */
  machine?: string;
  /** A fleet directory (HOMECLOUD_FLEET), machine -> what writeFleet writes for it; none given, no fleet directory. */
  fleet?: Record<string, FleetFixture>;
  /** Empty files of these names in the work directory the generator runs in. */
  cwdFiles?: string[];
}

export interface GeneratorResult {
  /** The work directory: tree/ (the inputs), out/ (the outputs, laid out like /), fleet/ and cwdFiles. */
  root: string;
  result: SpawnSyncReturns<string>;
  /** A file's text, by path under root (`out/...`). */
  read(path: string): string;
  /** A directory's entries, sorted, by path under root; none when it does not exist. */
  list(path: string): string[];
  /** The lines the generator printed. */
  lines: string[];
}

let scratch: string | undefined;
after(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/**
 * Run a layer's build-time generator as the build runs it (FORMAT.md section 7): in a work directory holding a tree
 * with its inputs and libraries, an empty output directory laid out like `/` and, when given, a fleet directory made
 * by hand as writeFleet lays it out. The work directory is removed after the test file.
 */
export function runGenerator({
  layer,
  generator: generatorName = layer,
  files = {},
  libraries = baseLibraries,
  machine = 'h1',
  fleet,
  cwdFiles = [],
}: GeneratorRun): GeneratorResult {
  scratch ??= mkdtempSync(join(tmpdir(), 'homecloud-generator-'));
  const root = mkdtempSync(join(scratch, `${layer}-`));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(root, 'tree', path, '..'), { recursive: true });
    writeFileSync(join(root, 'tree', path), content);
  }
  for (const library of libraries) {
    const path = join(root, 'tree', library.slice(library.indexOf('/')));
    mkdirSync(join(path, '..'), { recursive: true });
    copyFileSync(join(projectRoot, 'layers', library), path);
  }
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, LC_ALL: 'C', HOMECLOUD_MACHINE: machine };
  if (fleet) {
    env.HOMECLOUD_FLEET = join(root, 'fleet');
    mkdirSync(env.HOMECLOUD_FLEET);
    for (const [name, member] of Object.entries(fleet)) {
      const dir = join(env.HOMECLOUD_FLEET, name);
      mkdirSync(join(dir, 'public'), { recursive: true });
      writeFileSync(join(dir, 'layers'), (member.layers ?? ['_', layer]).map((each) => `${each}\n`).join(''));
      writeFileSync(join(dir, 'address'), `${member.address ?? `${name}.example.net`}\n`);
      writeFileSync(join(dir, 'offers'), (member.offers ?? []).map(([key, value]) => `${key}\t${value}\n`).join(''));
      for (const [file, content] of Object.entries(member.public ?? {})) writeFileSync(join(dir, 'public', file), content);
    }
  }
  mkdirSync(join(root, 'out'));
  // The build runs a generator in its work directory, which holds in/, out/ and fleet/.
  for (const name of cwdFiles) writeFileSync(join(root, name), '');
  const generator = join(projectRoot, 'layers', layer, 'usr/local/opt/initd/generators', generatorName);
  const result = spawnSync(generator, [join(root, 'tree'), join(root, 'out')], { encoding: 'utf8', cwd: root, env });
  return {
    root,
    result,
    read: (path) => readFileSync(join(root, path), 'utf8'),
    list: (path) => (existsSync(join(root, path)) ? readdirSync(join(root, path)).sort() : []),
    lines: result.stdout.trim().split('\n'),
  };
}
