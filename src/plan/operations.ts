import { sameEntry, type ManifestEntries, type ManifestEntry } from '../build/manifest.ts';

/**
 * The file operations that take a machine from what it is (`live`) to the
 * new generation (`next`), in the order the apply does them. Every list
 * holds absolute paths; the apply reads them as NUL-separated files.
 */
export interface FileOperations {
  /** Paths of the new generation that were not homecloud's, each with what it should become (f:sha256, l:target or d): what is there now is kept as an original, unless it already is that. */
  takeOver: [path: string, want: string][];
  /** Paths to remove before anything else because something of another type takes their place (no restore). */
  replace: string[];
  /** Files and links the new generation does not have, deepest first (an original comes back). */
  remove: string[];
  /** Directories the new generation does not have, deepest first (removed when homecloud made them and they are empty). */
  removeDirs: string[];
  /** Directories that must go because a file or link takes their place: must hold nothing homecloud does not manage. */
  mustEmpty: string[];
  /** Paths under `mustEmpty` directories that homecloud manages (the rest would be lost). */
  managedUnder: string[];
  /** Directories of the new generation that the machine lacks as far as homecloud knows, parents first (made when missing). */
  makeDirs: string[];
  /** Directories whose mode or owner must be set, with their mode. */
  fixDirs: [mode: string, path: string][];
  /** Files and links to place from the staging tree. */
  place: string[];
  /** Every path of the new generation (its record is taken at commit). */
  paths: string[];
  /** Directories of the new generation that the machine lacks as far as homecloud knows. */
  missingDirs: number;
}

const deepestFirst = (paths: string[]) => paths.sort().reverse();

/**
 * `committed` is what the last committed generation placed; `live` is the
 * machine now (committed, with moved paths as found). Paths in neither are
 * not homecloud's: what is there is taken over.
 */
export function fileOperations(committed: ManifestEntries, live: ManifestEntries, next: ManifestEntries): FileOperations {
  const paths = Object.keys(next).sort();
  const takeOver: [string, string][] = [];
  const place: string[] = [];
  const makeDirs: string[] = [];
  const fixDirs: [string, string][] = [];
  let missingDirs = 0;
  for (const path of paths) {
    const want = next[path]!;
    const have = live[path];
    if (!have && !committed[path]) takeOver.push([path, wanted(want)]);
    if (want.type === 'dir') {
      if (have?.type !== 'dir') {
        makeDirs.push(path);
        missingDirs++;
      }
      // A new directory gets 0755 from the apply's umask; anything else is set.
      if (have?.type === 'dir' ? !sameEntry(have, want) : want.mode !== '0755') fixDirs.push([want.mode, path]);
    } else if (!sameEntry(have, want)) {
      place.push(path);
    }
  }
  const replace: string[] = [];
  const remove: string[] = [];
  const removeDirs: string[] = [];
  const mustEmpty: string[] = [];
  for (const path of Object.keys(live)) {
    const have = live[path]!;
    const want = next[path];
    if (have.type === 'dir') {
      if (!want || want.type !== 'dir') removeDirs.push(path);
      if (want && want.type !== 'dir') mustEmpty.push(path);
    } else if (!want) remove.push(path);
    else if (want.type !== have.type) replace.push(path);
  }
  const managedUnder = mustEmpty.length
    ? Object.keys(live)
        .filter((path) => mustEmpty.some((dir) => path.startsWith(`${dir}/`)))
        .sort()
    : [];
  return {
    takeOver,
    replace: deepestFirst(replace),
    remove: deepestFirst(remove),
    removeDirs: deepestFirst(removeDirs),
    mustEmpty,
    managedUnder,
    makeDirs,
    fixDirs,
    place,
    paths,
    missingDirs,
  };
}

/** What a path should become, as the take-over check compares it. */
function wanted(entry: ManifestEntry): string {
  return entry.type === 'file' ? `f:${entry.sha256}` : entry.type === 'link' ? `l:${entry.target}` : 'd';
}

/** Whether the operations change anything on the machine. */
export function changesFiles(ops: FileOperations): boolean {
  return ops.replace.length + ops.remove.length + ops.removeDirs.length + ops.fixDirs.length + ops.place.length + ops.missingDirs > 0;
}
