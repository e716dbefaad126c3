import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rootOwner, type Manifest, type ManifestEntry } from '../build/manifest.ts';
import { HomecloudError } from '../load/errors.ts';
import { parseInspection, type LivePath } from '../plan/live.ts';
import { transportFor } from '../transport/ssh.ts';
import type { Target } from '../transport/transport.ts';
import { runProcessSync } from '../util/process.ts';
import type { DesiredState } from './deploy.ts';
import { inspectFunctions } from './inspect.ts';

export interface FileDiff {
  path: string;
  /** A unified diff, or a note when the content cannot be shown (secret, binary, too large), and what differs besides content. */
  text: string;
}

const largest = 1 << 20;

/**
 * Every managed path whose live state differs from the desired one: content
 * as a unified diff, and mode, owner and type in words. That is what a
 * deploy would change, and hand edits on the target (drift). Live state is
 * read on the target (hashes there); only differing files travel.
 */
export async function liveDiff(target: Target, desired: DesiredState, secrets: string[]): Promise<FileDiff[]> {
  const manifest = JSON.parse(readFileSync(desired.manifest, 'utf8')) as Manifest;
  const paths = Object.keys(manifest.entries).sort();
  const transport = transportFor(target);
  const inspected = await transport.run(
    `set -u\nexport LC_ALL=C\n${inspectFunctions}\nwork=$(mktemp -d)\ninspect "$work/x"\nbase64 -w0 "$work/x.found"; echo; base64 -w0 "$work/x.sums"; echo\nrm -rf "$work"`,
    {
      input: paths.map((path) => `${path}\0`).join(''),
    },
  );
  if (inspected.status !== 0) throw new HomecloudError(transport.describeFailure(inspected.stderr)).of(target.machine, 'probe');
  const [found = '', sums = ''] = inspected.stdout.split('\n');
  const live = parseInspection(Buffer.from(found, 'base64'), Buffer.from(sums, 'base64'));
  const differs = new Set(paths.filter((path) => differences(manifest.entries[path]!, live.get(path)).length > 0));
  // A missing directory says nothing more than the missing paths in it.
  const differing = [...differs].filter(
    (path) => live.has(path) || manifest.entries[path]!.type !== 'dir' || ![...differs].some((other) => other.startsWith(`${path}/`)),
  );
  if (differing.length === 0) return [];
  const wantContent = differing.filter((path) => {
    const entry = manifest.entries[path]!;
    return entry.type === 'file' && !entry.secret && live.get(path)?.type === 'file';
  });
  const contents = await fetchContents(target, wantContent);
  const work = mkdtempSync(join(tmpdir(), 'homecloud-diff-'));
  try {
    return differing.map((path) => {
      const entry = manifest.entries[path]!;
      const there = live.get(path);
      // A missing file shows as all added, or as a secret's note.
      const notes = differences(entry, there).filter((note) => note !== 'content' && !(entry.type === 'file' && !there));
      const text: string[] = [];
      if (notes.length) text.push(`(${notes.join('; ')})`);
      if (entry.type === 'file' && there?.type === 'file' && there.sha256 !== entry.sha256)
        text.push(contentDiff(target, path, entry, join(desired.tree, path), contents.get(path), work, secrets));
      if (entry.type === 'file' && !there)
        text.push(
          entry.secret
            ? '(secret: not on the machine yet; contents are not shown)'
            : contentDiff(target, path, entry, join(desired.tree, path), Buffer.alloc(0), work, secrets, true),
        );
      return { path, text: text.join('\n') };
    });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** What differs between a desired entry and the live path, in words ('content' for file contents and link targets). */
function differences(entry: ManifestEntry, live: LivePath | undefined): string[] {
  if (!live) return [entry.type === 'dir' ? 'missing directory' : 'missing on the machine'];
  const kind = entry.type === 'file' ? 'file' : entry.type === 'dir' ? 'dir' : 'link';
  if (live.type !== kind) {
    // A link to a directory where a directory belongs is the machine's own way (merged /usr).
    if (kind === 'dir' && live.type === 'link' && live.toDirectory) return [];
    return [
      `a ${live.type === 'dir' ? 'directory' : live.type === 'other' ? 'special file' : live.type} on the machine, a ${kind === 'dir' ? 'directory' : kind} in the build`,
    ];
  }
  const notes: string[] = [];
  if (entry.type === 'file') {
    if (live.sha256 !== entry.sha256) notes.push('content');
    if (live.mode !== entry.mode) notes.push(`mode ${live.mode} on the machine, ${entry.mode} in the build`);
    if (live.owner !== (entry.owner ?? rootOwner)) notes.push(`owner ${live.owner} on the machine, ${entry.owner ?? rootOwner} in the build`);
  } else if (entry.type === 'link') {
    if (live.target !== entry.target) notes.push(`links to ${live.target} on the machine, ${entry.target} in the build`);
  } else if ((parseInt(live.mode, 8) & 0o1000) !== (parseInt(entry.mode, 8) & 0o1000)) {
    // Directories the machine had keep their own mode: only the sticky bit (.pin) is homecloud's.
    notes.push(`mode ${live.mode} on the machine, ${entry.mode} in the build`);
  }
  return notes;
}

/** The live contents of files (up to 1 MiB each), NUL-safe. */
async function fetchContents(target: Target, paths: string[]): Promise<Map<string, Buffer>> {
  const contents = new Map<string, Buffer>();
  if (paths.length === 0) return contents;
  const fetched = await transportFor(target).run(
    `while IFS= read -r -d '' path; do if [ -f "$path" ] && [ "$(stat -c %s -- "$path")" -le ${largest} ]; then printf '%s\\0' "$path"; base64 -w0 -- "$path"; printf '\\0'; fi; done`,
    { input: paths.map((path) => `${path}\0`).join('') },
  );
  const parts = fetched.stdout.split('\0');
  for (let i = 0; i + 1 < parts.length; i += 2) contents.set(parts[i]!, Buffer.from(parts[i + 1]!, 'base64'));
  return contents;
}

function contentDiff(
  target: Target,
  path: string,
  entry: ManifestEntry,
  wantedPath: string,
  there: Buffer | undefined,
  work: string,
  secrets: string[],
  absent = false,
): string {
  if (entry.type === 'file' && entry.secret) return `(secret: ${absent ? 'not on the machine yet' : 'differs'}; contents are not shown)`;
  const wanted = readFileSync(wantedPath);
  if (!there) return `(larger than ${largest >> 20} MiB on the machine: not shown)`;
  if (wanted.includes(0) || there.includes(0)) return 'binary file differs';
  writeFileSync(join(work, 'live'), there);
  writeFileSync(join(work, 'new'), wanted);
  // Exit status 1 says they differ, which is known.
  const diff = runProcessSync(
    'diff',
    ['-u', '--label', `${target.machine}:${path}${absent ? ' (absent)' : ''}`, '--label', `build:${path}`, join(work, 'live'), join(work, 'new')],
    { check: false },
  );
  return mask(diff.stdout, secrets);
}

function mask(text: string, secrets: string[]): string {
  let masked = text;
  for (const secret of secrets) masked = masked.split(secret).join('******');
  return masked;
}
