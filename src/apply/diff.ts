import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Manifest } from '../build/manifest.ts';
import { HomecloudError } from '../load/errors.ts';
import { describeSshFailure, runScript, type Target } from '../transport/ssh.ts';
import { lazyChildProcess } from '../util/lazy.ts';
import type { DesiredState } from './deploy.ts';

export interface FileDiff {
  path: string;
  /** A unified diff, or a note when the content cannot be shown (secret, binary, too large). */
  text: string;
}

const largest = 1 << 20;

/**
 * Every file whose live content differs from the desired one, with a unified
 * diff: what a deploy would change, and hand edits on the target (drift).
 * Live hashes are compared on the target; only differing files travel.
 */
export async function liveDiff(target: Target, desired: DesiredState, secrets: string[]): Promise<FileDiff[]> {
  const manifest = JSON.parse(readFileSync(desired.manifest, 'utf8')) as Manifest;
  const files = Object.entries(manifest.entries).filter(([, entry]) => entry.type === 'file');
  const hashed = await runScript(target, `tr '\\n' '\\0' | xargs -0 -r sha256sum 2>/dev/null; exit 0`, { input: files.map(([path]) => path).join('\n') + '\n' });
  if (hashed.status !== 0) throw new HomecloudError(describeSshFailure(target, hashed.stderr), { file: target.machine });
  const live = new Map<string, string>();
  for (const line of hashed.stdout.split('\n')) {
    const match = /^([0-9a-f]{64}) {2}(.+)$/.exec(line);
    if (match) live.set(match[2]!, match[1]!);
  }
  const differing = files.filter(([path, entry]) => entry.type === 'file' && live.get(path) !== entry.sha256);
  if (differing.length === 0) return [];
  const fetched = await runScript(
    target,
    `while IFS= read -r path; do if [ -f "$path" ] && [ "$(stat -c %s "$path")" -le ${largest} ]; then printf '%s\\t' "$path"; base64 -w0 "$path"; echo; fi; done`,
    { input: differing.map(([path]) => path).join('\n') + '\n' },
  );
  const contents = new Map<string, Buffer>();
  for (const line of fetched.stdout.split('\n')) {
    const tab = line.indexOf('\t');
    if (tab > 0) contents.set(line.slice(0, tab), Buffer.from(line.slice(tab + 1), 'base64'));
  }
  const work = mkdtempSync(join(tmpdir(), 'homecloud-diff-'));
  try {
    return differing.map(([path, entry]) => {
      const wanted = readFileSync(join(desired.tree, path));
      const there = contents.get(path);
      if (entry.type === 'file' && entry.secret) return { path, text: `(secret: ${there ? 'differs' : 'not on the machine yet'}; contents are not shown)` };
      if (wanted.includes(0) || there?.includes(0)) return { path, text: 'binary file differs' };
      if (!there && live.has(path)) return { path, text: `larger than ${largest >> 20} MiB on the machine: not shown` };
      writeFileSync(join(work, 'live'), there ?? '');
      writeFileSync(join(work, 'new'), wanted);
      const diff = lazyChildProcess().spawnSync('diff', ['-u', '--label', `${target.machine}:${path}${there ? '' : ' (absent)'}`, '--label', `build:${path}`, join(work, 'live'), join(work, 'new')], { encoding: 'utf8' });
      return { path, text: mask(diff.stdout, secrets) };
    });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function mask(text: string, secrets: string[]): string {
  let masked = text;
  for (const secret of secrets) masked = masked.split(secret).join('******');
  return masked;
}
