import { rootOwner, type ManifestEntries, type ManifestEntry } from '../build/manifest.ts';
import type { Inspection } from '../facts/probe.ts';
import { ancestorsOf, octal } from '../util/fs.ts';

/** What one path is on a target, as the inspect function read it. */
export interface LivePath {
  type: 'file' | 'dir' | 'link' | 'other';
  /** For a link: whether it leads to a directory. */
  toDirectory: boolean;
  mode: string;
  owner: string;
  sha256?: string;
  target?: string;
}

/** NUL-separated fields, as the target's find and sha256sum -z write them. */
function fields(data: Buffer): string[] {
  const text = data.toString('utf8');
  const parts = text.split('\0');
  if (parts.at(-1) === '') parts.pop();
  return parts;
}

/** The inspect function's output: each existing path and what it is. Paths inspected but not found are missing. */
export function parseInspection(found: Buffer, sums: Buffer): Map<string, LivePath> {
  const hashes = new Map<string, string>();
  for (const line of fields(sums)) hashes.set(line.slice(66), line.slice(0, 64));
  const live = new Map<string, LivePath>();
  const parts = fields(found);
  for (let i = 0; i + 5 < parts.length; i += 6) {
    const [path, type, followed, mode, owner, target] = parts.slice(i, i + 6) as [string, string, string, string, string, string];
    const kind = type === 'f' ? 'file' : type === 'd' ? 'dir' : type === 'l' ? 'link' : 'other';
    live.set(path, {
      type: kind,
      toDirectory: followed === 'd',
      mode: octal(parseInt(mode, 8)),
      owner,
      sha256: kind === 'file' ? hashes.get(path) : undefined,
      target: kind === 'link' ? target : undefined,
    });
  }
  return live;
}

export type DriftKind = 'content' | 'mode' | 'owner' | 'type' | 'removed';

/** A managed path changed on the machine since homecloud placed it. */
export interface Drift {
  path: string;
  kinds: DriftKind[];
  /** In words: "mode 0600 (0644 in generation 4)". */
  detail: string;
}

/** A drifted path as plan, diff and status say it. */
export function driftText(drift: Drift): string {
  return `${drift.path}: ${drift.detail} (changed on the machine; restored by deploy)`;
}

export interface LiveState {
  /** The machine as it is: the committed manifest with every moved path as found. */
  entries: ManifestEntries;
  /** Managed paths changed by hand (or by anything but homecloud). */
  drift: Drift[];
}

/**
 * The machine's managed paths as they are: the committed manifest, with the
 * paths the probe found moved replaced by what they are now. A directory
 * homecloud did not create is the machine's own: only its type and sticky
 * bit matter (a link to a directory, like /lib on merged-/usr, counts as
 * one). Anything found below a link is not at that path, so it is left out.
 */
export function liveState(committed: ManifestEntries, moved: Inspection | undefined): LiveState {
  const entries: ManifestEntries = { ...committed };
  const drift: Drift[] = [];
  if (!moved) return { entries, drift };
  const found = parseInspection(moved.found, moved.sums);
  const created = new Set(fields(moved.created));
  for (const path of fields(moved.paths)) {
    const was = committed[path];
    const now = found.get(path);
    const entry = now && liveEntry(now, was, created.has(path));
    if (entry) entries[path] = entry;
    else delete entries[path];
    if (was) {
      const kinds = differences(was, entry);
      if (kinds.length) drift.push({ path, kinds, detail: describe(kinds, was, entry) });
    }
  }
  // Nothing is managed below a path that is no longer a directory (what was found there is elsewhere).
  const blocked = new Set(fields(moved.paths).filter((path) => entries[path] && entries[path]!.type !== 'dir'));
  if (blocked.size) {
    for (const path of Object.keys(entries)) if (ancestorsOf(path).some((dir) => blocked.has(dir))) delete entries[path];
  }
  return { entries, drift: drift.sort((a, b) => (a.path < b.path ? -1 : 1)) };
}

function liveEntry(now: LivePath, was: ManifestEntry | undefined, created: boolean): ManifestEntry {
  const owner = now.owner === rootOwner ? {} : { owner: now.owner };
  // The machine's own directory (or link to one): homecloud manages only its sticky bit.
  if (was?.type === 'dir' && !created && (now.type === 'dir' || (now.type === 'link' && now.toDirectory))) {
    const sticky = parseInt(now.type === 'dir' ? now.mode : '0', 8) & 0o1000;
    return { type: 'dir', mode: octal((parseInt(was.mode, 8) & ~0o1000) | sticky) };
  }
  switch (now.type) {
    case 'dir':
      return { type: 'dir', mode: now.mode, ...owner };
    case 'link':
      return { type: 'link', target: now.target ?? '', ...owner };
    case 'file':
      return { type: 'file', mode: now.mode, sha256: now.sha256 ?? '', ...owner };
    case 'other':
      return { type: 'file', mode: now.mode, sha256: '(not a regular file)', ...owner };
  }
}

function differences(was: ManifestEntry, now: ManifestEntry | undefined): DriftKind[] {
  if (!now) return ['removed'];
  if (now.type !== was.type) return ['type'];
  const kinds: DriftKind[] = [];
  if (now.type === 'file' && was.type === 'file' && now.sha256 !== was.sha256) kinds.push('content');
  if (now.type === 'link' && was.type === 'link' && now.target !== was.target) kinds.push('content');
  if (now.type !== 'link' && was.type !== 'link' && now.mode !== was.mode) kinds.push('mode');
  if ((now.owner ?? rootOwner) !== (was.owner ?? rootOwner)) kinds.push('owner');
  return kinds;
}

function describe(kinds: DriftKind[], was: ManifestEntry, now: ManifestEntry | undefined): string {
  const name = (entry: ManifestEntry) => (entry.type === 'dir' ? 'a directory' : entry.type === 'link' ? 'a link' : 'a file');
  return kinds
    .map((kind) => {
      switch (kind) {
        case 'removed':
          return 'removed';
        case 'type':
          return `${name(now!)} instead of ${name(was)}`;
        case 'content':
          return now!.type === 'link' ? `links to ${now!.target} instead of ${(was as { target: string }).target}` : 'content edited';
        case 'mode':
          return `mode ${(now as { mode: string }).mode} instead of ${(was as { mode: string }).mode}`;
        case 'owner':
          return `owner ${now!.owner ?? rootOwner} instead of ${was.owner ?? rootOwner}`;
      }
    })
    .join(', ');
}
