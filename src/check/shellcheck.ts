import { closeSync, lstatSync, openSync, readSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { MachineLayout } from '../build/layout.ts';
import type { RepoPaths } from '../load/repo.ts';
import { runProcess } from '../util/process.ts';
import type { CheckResult, Problem } from './results.ts';
import { whereInTree } from './where.ts';

/** The first bytes of a file: enough for its #! line. */
function head(path: string): string {
  const buffer = Buffer.alloc(64);
  const fd = openSync(path, 'r');
  try {
    return buffer.subarray(0, readSync(fd, buffer, 0, buffer.length, 0)).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** A file whose first line runs bash or sh, or names its shell to shellcheck (a library to source): shellcheck's to check. */
export function isShellScript(path: string): boolean {
  if (!lstatSync(path).isFile()) return false;
  const start = head(path);
  return /^#!\s*\S*\/(env\s+)?(ba)?sh\b/.test(start) || /^# shellcheck shell=(ba)?sh\b/.test(start);
}

interface ShellcheckComment {
  file: string;
  line: number;
  level: string;
  code: number;
  message: string;
}

/**
 * shellcheck, at its default severity, on every shell script of a machine's built tree (templates rendered).
 * Sourced files are found in the tree (`--source-path`: `source /usr/local/lib/x.bash` reads the tree's), and a
 * `# shellcheck source=` directive from where it was written: the repository's root for the repository's
 * layers, homecloud's for its standard layers. A `.shellcheckrc` in the repository applies, as shellcheck
 * looks for one above each file.
 */
export async function shellcheckTree(
  repo: RepoPaths,
  machine: string,
  tree: string,
  layout: MachineLayout,
): Promise<Omit<CheckResult, 'check' | 'machine' | 'milliseconds'>> {
  const scripts = Object.entries(layout.manifest.entries)
    .filter(([path, entry]) => entry.type === 'file' && isShellScript(join(tree, path)))
    .map(([path]) => path);
  if (scripts.length === 0) return { ok: true, summary: 'no shell scripts', problems: [] };
  const standard = (path: string) => layout.provenance.get(path)?.entry.source.origin === 'standard';
  const groups = [
    { cwd: dirname(repo.stdlibLayers), paths: scripts.filter(standard) },
    { cwd: repo.root, paths: scripts.filter((path) => !standard(path)) },
  ].filter((group) => group.paths.length > 0);
  const problems: Problem[] = [];
  for (const group of groups) {
    const files = group.paths.map((path) => join(tree, path));
    const result = await runProcess('shellcheck', ['--format=json1', '--external-sources', `--source-path=${tree}`, '--', ...files], {
      cwd: group.cwd,
      check: false,
    });
    // 0: nothing to say; 1: something to say; anything else: shellcheck could not do its work.
    if (result.status !== 0 && result.status !== 1) {
      problems.push({ message: `shellcheck failed (exit status ${result.status}): ${result.stderr.trim().split('\n')[0] ?? ''}` });
      continue;
    }
    const { comments } = JSON.parse(result.stdout || '{"comments":[]}') as { comments: ShellcheckComment[] };
    for (const comment of comments) {
      const path = comment.file.startsWith(tree) ? comment.file.slice(tree.length) : comment.file;
      problems.push({
        ...whereInTree(repo, layout, path),
        line: comment.line,
        message: `SC${comment.code} (${comment.level}): ${comment.message}`,
      });
    }
  }
  const count = `${scripts.length} shell script${scripts.length === 1 ? '' : 's'}`;
  return problems.length === 0
    ? { ok: true, summary: count, problems }
    : { ok: false, summary: `${count}, ${new Set(problems.map((problem) => problem.file)).size} rejected by shellcheck`, problems };
}
