import { accessSync, constants, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HomecloudError, describeSystemError, type Location } from './errors.ts';
import { layerNameRule, machineNameRule, nameProblem, shownName } from './names.ts';
import type { RepoPaths } from './repo.ts';
import { lstatExists } from '../util/fs.ts';

/** Where a machine's layer list lives, relative to its directory. */
export const layerListDir = 'usr/local/opt/initd/layers';

export interface LayerSelection {
  name: string;
  /** The list file and line that selected it. */
  selectedAt: Location;
}

export interface Source {
  /** `_`, a layer name, or `machine:<name>` for the machine's own tree. */
  name: string;
  kind: 'layer' | 'machine';
  dir: string;
  origin: 'repository' | 'standard';
  selectedAt?: Location;
}

const selectLine = /^\+ (\S+)\s*$/;

/** The machine's layer list directory and the lists in it (none when it cannot be read). */
export function layerListFiles(repo: RepoPaths, machine: string): string[] {
  const dir = `${repo.machineDir(machine)}/${layerListDir}`;
  try {
    return [dir, ...readdirSync(dir).map((name) => `${dir}/${name}`)];
  } catch {
    return [dir];
  }
}

/** The layers a machine's list files select, in order, each name once. */
export function readLayerSelections(repo: RepoPaths, machine: string): LayerSelection[] {
  // Concatenated, not joined: joins cost microseconds each, and these run per machine and build (names are one component).
  const dir = `${repo.machineDir(machine)}/${layerListDir}`;
  let files: string[];
  try {
    files = readdirSync(dir)
      .filter((name) => name.endsWith('.txt'))
      .sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new HomecloudError(`cannot read the layer lists: ${describeSystemError(error)}`, { file: repo.display(dir) });
  }
  const selections: LayerSelection[] = [];
  const seen = new Set<string>();
  for (const name of files) {
    const path = `${dir}/${name}`;
    const file = repo.display(path);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      throw new HomecloudError(`cannot read: ${describeSystemError(error)}`, { file });
    }
    text.split('\n').forEach((line, index) => {
      const match = selectLine.exec(line);
      if (!match) return;
      const layer = match[1]!;
      const where = { file, line: index + 1 };
      const problem = nameProblem(layer);
      if (problem) throw new HomecloudError(`"${layer}" is not a layer name: it ${problem}`, where, `${layerNameRule}: fix the line`);
      if (layer === '_' || seen.has(layer)) return;
      seen.add(layer);
      selections.push({ name: layer, selectedAt: where });
    });
  }
  return selections;
}

/** Layer directories already found, by name (layers are shared by machines). */
export type LayerDirectories = Map<string, Pick<Source, 'dir' | 'origin'>>;

/** Find a layer's directory: the repository's own first, then homecloud's standard one. */
export function resolveLayer(repo: RepoPaths, name: string, useStdlib: boolean, selectedAt?: Location, known?: LayerDirectories): Source {
  const found = known?.get(name);
  if (found) return { name, kind: 'layer', ...found, selectedAt };
  const source = findLayer(repo, name, useStdlib, selectedAt);
  known?.set(name, { dir: source.dir, origin: source.origin });
  return source;
}

function findLayer(repo: RepoPaths, name: string, useStdlib: boolean, selectedAt?: Location): Source {
  const own = `${repo.layers}/${name}`;
  if (isDirectory(own)) return { name, kind: 'layer', dir: own, origin: 'repository', selectedAt };
  const standard = `${repo.stdlibLayers}/${name}`;
  if (useStdlib && isDirectory(standard)) return { name, kind: 'layer', dir: standard, origin: 'standard', selectedAt };
  if (name === '_') {
    throw new HomecloudError(
      'there is no base layer: layers/_ does not exist and homecloud.json turns the standard layers off',
      { file: repo.display(repo.settingsFile) },
      'create layers/_/ (with usr/local/include/m4/ for templates), or set "stdlib": true',
    );
  }
  const known = knownLayers(repo, useStdlib);
  const near = closest(name, known);
  throw new HomecloudError(
    `unknown layer "${name}": there is no directory layers/${name}${useStdlib ? ' and no standard layer of that name' : ''}`,
    selectedAt ?? { file: repo.display(own) },
    near ? `did you mean "${near}"? Otherwise create layers/${name}/ or remove the line` : `create layers/${name}/ or remove the line`,
  );
}

/** The sources a machine's tree is made of, in merge order: `_`, its layers, its own directory. */
export function machineSources(repo: RepoPaths, machine: string, useStdlib: boolean, known?: LayerDirectories): Source[] {
  const unusable = machineDirectoryProblem(repo, machine);
  if (unusable) throw unusable;
  const sources = [resolveLayer(repo, '_', useStdlib, undefined, known)];
  for (const selection of readLayerSelections(repo, machine)) {
    sources.push(resolveLayer(repo, selection.name, useStdlib, selection.selectedAt, known));
  }
  sources.push({ name: `machine:${machine}`, kind: 'machine', dir: repo.machineDir(machine), origin: 'repository' });
  return sources;
}

/**
 * Why a machine's directory cannot be built from, if it cannot: a name that is
 * no machine name (a newline in it), one that is not valid UTF-8 (the
 * directory cannot be opened by the name read), or a directory that cannot be
 * read. Only that machine fails; a machine with no directory (only in
 * inventory.json) has none of these.
 */
export function machineDirectoryProblem(repo: RepoPaths, machine: string): HomecloudError | undefined {
  const dir = repo.machineDir(machine);
  const problem = nameProblem(machine);
  if (problem) {
    return new HomecloudError(
      `the directory ${JSON.stringify(machine)} is not a machine name: it ${problem}`,
      { file: repo.display(repo.machines) },
      `${machineNameRule}: rename the directory`,
    );
  }
  // A name read from a directory that is not valid UTF-8 comes with U+FFFD in it, and names no directory.
  if (machine.includes('\uFFFD') && !existsSync(dir)) {
    return new HomecloudError(
      `the name of the directory ${JSON.stringify(machine)} is not valid UTF-8`,
      { file: repo.display(repo.machines) },
      'rename the directory to a name in UTF-8',
    );
  }
  try {
    accessSync(dir, constants.R_OK | constants.X_OK);
    return undefined;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    const where = { file: repo.display(dir) };
    if (!isDirectory(dir) && lstatExists(dir))
      return new HomecloudError(
        `the machine directory is not a directory`,
        where,
        `make it a directory, or remove it and keep machine ${shownName(machine)} in inventory.json only`,
      );
    return new HomecloudError(
      `cannot read the machine directory: ${describeSystemError(error)}`,
      where,
      `make it readable and searchable for the user running homecloud (chmod u+rx ${where.file}), or move it out of machines/`,
    );
  }
}

export function knownLayers(repo: RepoPaths, useStdlib: boolean): string[] {
  const names = new Set(listDirectories(repo.layers));
  if (useStdlib) for (const name of listDirectories(repo.stdlibLayers)) names.add(name);
  return [...names].sort();
}

function listDirectories(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((entry) => entry.isDirectory() || (entry.isSymbolicLink() && isDirectory(join(dir, entry.name))))
      .map((entry) => entry.name);
  } catch {
    return [];
  }
}

/** Whether a directory is at a path, links followed: with a trailing slash nothing else resolves (no Stats made, a build asks this of every layer). */
function isDirectory(path: string): boolean {
  return existsSync(`${path}/`);
}

/** The known name nearest to a misspelt one, if it is plausibly a typo. */
function closest(name: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(name.length / 3)) + 1;
  for (const candidate of candidates) {
    const distance = editDistance(name, candidate);
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}
