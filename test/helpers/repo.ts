import { spawnSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { Builder, type BuildReport } from '../../src/build/builder.ts';
import { HomecloudError } from '../../src/load/errors.ts';
import type { Manifest } from '../../src/build/manifest.ts';
import { RepoPaths } from '../../src/load/repo.ts';
import { stampedUpToDate } from '../../src/build/up-to-date.ts';

export const projectRoot = resolve(import.meta.dirname, '../..');
export const cliPath = join(projectRoot, 'bin', 'homecloud.cjs');

/** A file in a fixture: text, text with a mode, or a symbolic link. */
export type FixtureFile = string | { content: string; mode: number } | { link: string };

const created: string[] = [];
after(() => {
  for (const dir of created) rmSync(dir, { recursive: true, force: true });
});

/**
 * A repository's own base layer with homecloud's m4 prelude and nothing else,
 * for tests of the format that the standard base layer's files, facts and
 * packages would only get in the way of.
 */
export const preludeOnlyBase: Record<string, FixtureFile> = {
  'layers/_/usr/local/include/m4/00-prelude.m4': readFileSync(join(projectRoot, 'layers/_/usr/local/include/m4/00-prelude.m4'), 'utf8'),
};

/** A throwaway cloud repository with the given files (paths relative to its root); removed after the test file. */
export function makeRepo(files: Record<string, FixtureFile>): string {
  const root = mkdtempSync(join(tmpdir(), 'homecloud-test-'));
  created.push(root);
  writeFiles(root, files);
  return root;
}

export function writeFiles(root: string, files: Record<string, FixtureFile>): void {
  for (const [path, file] of Object.entries(files)) {
    const full = join(root, path);
    mkdirSync(dirname(full), { recursive: true });
    rmSync(full, { force: true });
    if (typeof file === 'string') writeFileSync(full, file);
    else if ('link' in file) symlinkSync(file.link, full);
    else {
      writeFileSync(full, file.content);
      chmodSync(full, file.mode);
    }
  }
}

export function repoPaths(root: string): RepoPaths {
  return new RepoPaths(root, join(projectRoot, 'layers'));
}

/** Build in-process, as `homecloud build` does. */
export async function build(root: string, machines?: string[]): Promise<BuildReport> {
  const repo = repoPaths(root);
  // `homecloud build`'s shortcut may only say what the builder finds: checked before every build of the tests.
  const stamped = machines?.length ? undefined : stampedUpToDate(repo);
  const report = await new Builder(repo).build({ machines });
  if (stamped) {
    assert.deepEqual(
      report.machines.map((result) => [result.machine, result.status]),
      stamped.map((machine) => [machine, 'up-to-date']),
      'the up-to-date stamp says what the builder found',
    );
  }
  return report;
}

/** The one machine's result, failing the test helper if the build threw. */
export async function buildOne(root: string, machine: string) {
  const report = await build(root, [machine]);
  return report.machines[0]!;
}

export function manifestOf(root: string, machine: string): Manifest {
  return JSON.parse(readFileSync(join(root, 'var/build', machine, 'manifest.json'), 'utf8')) as Manifest;
}

export function treeFile(root: string, machine: string, path: string): string {
  return join(root, 'var/build', machine, 'tree', path);
}

export function readTree(root: string, machine: string, path: string): string {
  return readFileSync(treeFile(root, machine, path), 'utf8');
}

/** Run the bundled CLI (npm run build makes it). */
export function runCli(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}) {
  const result = spawnSync(process.execPath, [cliPath, ...args], {
    cwd: options.cwd ?? projectRoot,
    env: { ...process.env, NO_COLOR: '1', ...options.env },
    encoding: 'utf8',
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The smallest repository: one machine with the given layers. */
export function layerList(...layers: string[]): Record<string, string> {
  return { 'machines/m/usr/local/opt/initd/layers/10.txt': layers.map((l) => `+ ${l}\n`).join('') };
}

/** Permission bits (with setuid, setgid and sticky) of a path, not following a final symlink. */
export function modeOf(path: string): number {
  return lstatSync(path).mode & 0o7777;
}

/** Build one machine and return its error, failing when it built. */
export async function buildError(root: string, machine = 'm') {
  const result = await buildOne(root, machine);
  if (result.status !== 'failed' || !result.error) throw new Error(`expected ${machine} to fail, but it is ${result.status}`);
  return result.error;
}

/** The error a build of the whole repository throws before building any machine (a bad homecloud.json or inventory.json). */
export async function loadError(root: string): Promise<HomecloudError> {
  try {
    await build(root);
  } catch (error) {
    assert.ok(error instanceof HomecloudError, String(error));
    return error;
  }
  assert.fail('the build should have failed');
}
