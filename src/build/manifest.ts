import { octal } from '../util/fs.ts';

/** Every path homecloud places is root's. A live path owned by someone else says so in `owner`. */
export const rootOwner = 'root:root';

export type ManifestEntry =
  | { type: 'dir'; mode: string; owner?: string }
  | { type: 'file'; mode: string; sha256: string; secret?: true; owner?: string }
  | { type: 'link'; target: string; owner?: string };

export type ManifestEntries = Record<string, ManifestEntry>;

export interface PackageLine {
  name: string;
  file: string;
  line: number;
}

/** The desired state of one machine: every path homecloud owns there. */
export interface Manifest {
  format: 1;
  machine: string;
  /** Owner and group (user:group) of every path: root:root. */
  owner?: string;
  entries: ManifestEntries;
  packages: { install: string[]; purge: string[] };
}

/**
 * A regular file's entry. A secret's file is its owner's (root's) alone,
 * whatever mode the source has (git keeps only 644 and 755); so is a file in a
 * directory that holds a `.private` (its contents are still shown by diff).
 */
export function fileEntry(mode: number, sha256: string, secret: boolean, private_ = false): ManifestEntry {
  return secret ? { type: 'file', mode: fileMode(mode, true), sha256, secret: true } : { type: 'file', mode: fileMode(mode, private_), sha256 };
}

/** The target mode of a file made from a source with `mode`. */
export function fileMode(mode: number, secret: boolean): string {
  return octal(secret ? mode & ~0o077 : mode);
}

export function sameEntry(a: ManifestEntry | undefined, b: ManifestEntry | undefined): boolean {
  if (!a || !b || a.type !== b.type || (a.owner ?? rootOwner) !== (b.owner ?? rootOwner)) return false;
  switch (a.type) {
    case 'dir':
      return a.mode === (b as typeof a).mode;
    case 'file':
      return a.mode === (b as typeof a).mode && a.sha256 === (b as typeof a).sha256;
    case 'link':
      return a.target === (b as typeof a).target;
  }
}

/** Entries sorted by path, so that manifests compare and diff stably. */
export function sortEntries(entries: ManifestEntries): ManifestEntries {
  const sorted: ManifestEntries = {};
  for (const path of Object.keys(entries).sort()) sorted[path] = entries[path]!;
  return sorted;
}
