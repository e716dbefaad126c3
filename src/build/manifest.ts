export type ManifestEntry =
  | { type: 'dir'; mode: string }
  | { type: 'file'; mode: string; sha256: string; secret?: true }
  | { type: 'link'; target: string };

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
  entries: ManifestEntries;
  packages: { install: string[]; purge: string[] };
}

export function sameEntry(a: ManifestEntry | undefined, b: ManifestEntry | undefined): boolean {
  if (!a || !b || a.type !== b.type) return false;
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
