// Files homecloud cannot read: the message names the path and the reason.
// Root reads files whatever their mode, so as root the CLI runs as user nobody
// on a repository it owns, with one path chmod 000.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, lchownSync, lstatSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { cliPath, layerList, makeRepo, projectRoot, readTree, type FixtureFile } from '../helpers/repo.ts';

const asRoot = process.getuid?.() === 0;
const nobody = asRoot ? userIds('nobody') : undefined;

/**
 * What the CLI needs to run, copied where nobody can read it: the checkout
 * may be where nobody cannot reach (a clone in /root, mode 0700). The bundle
 * finds its standard layers and native walker next to itself (src/load/repo.ts,
 * src/util/native.ts), so the copy runs on its own.
 */
function copyOfCli(): string {
  const dir = mkdtempSync(join(tmpdir(), 'homecloud-cli-'));
  for (const part of ['bin', 'dist', 'layers', 'package.json']) cpSync(join(projectRoot, part), join(dir, part), { recursive: true, verbatimSymlinks: true });
  const addon = 'build/Release/tree_signature.node';
  if (existsSync(join(projectRoot, addon))) cpSync(join(projectRoot, addon), join(dir, addon));
  worldReadable(dir);
  return dir;
}

/** Readable (and directories and programs searchable or runnable) by everyone, whatever the checkout's modes. */
function worldReadable(path: string): void {
  const stats = lstatSync(path);
  if (stats.isSymbolicLink()) return;
  const runnable = stats.isDirectory() || (stats.mode & 0o100) !== 0;
  chmodSync(path, (stats.mode & 0o7777) | 0o444 | (runnable ? 0o111 : 0));
  if (stats.isDirectory()) for (const name of readdirSync(path)) worldReadable(join(path, name));
}

const cliCopy = nobody ? copyOfCli() : undefined;
after(() => {
  if (cliCopy) rmSync(cliCopy, { recursive: true, force: true });
});

function userIds(name: string): { uid: number; gid: number } | undefined {
  const uid = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0) return undefined;
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

function chownTree(path: string, ids: { uid: number; gid: number }): void {
  lchownSync(path, ids.uid, ids.gid);
  if (lstatSync(path).isDirectory()) for (const name of readdirSync(path)) chownTree(join(path, name), ids);
}

/** A repository where `unreadable` paths are mode 000, built by the CLI as a user the mode applies to. */
function buildWithUnreadable(files: Record<string, FixtureFile>, unreadable: string[], args = ['build']) {
  const root = makeRepo({ ...files, 'machines/other/etc/other.conf': 'other\n' });
  if (nobody) {
    chmodSync(root, 0o755);
    chownTree(root, nobody);
  }
  for (const path of unreadable) chmodSync(join(root, path), 0o000);
  const run = spawnSync(process.execPath, [cliCopy ? join(cliCopy, 'bin/homecloud.cjs') : cliPath, '-C', root, ...args], {
    // A working directory nobody can enter (the checkout) is no place to start in.
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
    ...(nobody ?? {}),
  });
  return { root, status: run.status, stdout: run.stdout, stderr: run.stderr };
}

// In CI a missing prerequisite fails the tests instead of skipping them.
const missing = asRoot && !nobody ? 'running as root without a user "nobody"' : undefined;
if (missing && process.env.CI === 'true') throw new Error(`cannot test unreadable files: ${missing}`);
const skip = missing ?? false;

/** The machine m failed with a message naming `path` and saying permission was denied; the other machine built. */
function assertDenied(result: ReturnType<typeof buildWithUnreadable>, path: string, what = 'cannot read'): void {
  assert.equal(result.status, 1, result.stderr);
  const escaped = path.replace(/[.*+?^${}()|[\]\\!]/g, '\\$&');
  assert.match(result.stderr, new RegExp(`^error: m: (\\S*/)?${escaped}: ${what}: permission denied$`, 'm'));
  assert.match(result.stdout, /^other\s+built/m);
  assert.equal(readTree(result.root, 'other', '/etc/other.conf'), 'other\n');
}

const base = { ...layerList('a'), 'layers/a/etc/ok.conf': 'ok\n' };

test('an unreadable layer file: the message names it and says permission denied', { skip }, () => {
  assertDenied(buildWithUnreadable({ ...base, 'layers/a/etc/secret.conf': 'x\n' }, ['layers/a/etc/secret.conf']), 'layers/a/etc/secret.conf');
});

test('an unreadable template', { skip }, () => {
  assertDenied(buildWithUnreadable({ ...base, 'layers/a/etc/t.m4.conf': 'ENV_MACHINE\n' }, ['layers/a/etc/t.m4.conf']), 'layers/a/etc/t.m4.conf');
});

test('an unreadable directory in a layer', { skip }, () => {
  assertDenied(buildWithUnreadable({ ...base, 'layers/a/etc/private/f': 'x\n' }, ['layers/a/etc/private']), 'layers/a/etc/private', 'cannot read directory');
});

test('unreadable facts files and layer defaults', { skip }, () => {
  assertDenied(buildWithUnreadable({ ...base, 'facts/m.env': 'ENV_A=1\n' }, ['facts/m.env']), 'facts/m.env');
  assertDenied(buildWithUnreadable({ ...base, 'facts/m.json': '{}' }, ['facts/m.json']), 'facts/m.json');
  assertDenied(
    buildWithUnreadable({ ...base, 'layers/a/usr/local/doc/examples/a.env': 'ENV_A=1\n' }, ['layers/a/usr/local/doc/examples/a.env']),
    'layers/a/usr/local/doc/examples/a.env',
  );
});

test('an unreadable layer list or declared links list', { skip }, () => {
  assertDenied(buildWithUnreadable(base, ['machines/m/usr/local/opt/initd/layers/10.txt']), 'machines/m/usr/local/opt/initd/layers/10.txt');
  assertDenied(
    buildWithUnreadable({ ...base, 'layers/a/usr/local/opt/initd/links/l.txt': '/etc/l /dev/null\n' }, ['layers/a/usr/local/opt/initd/links/l.txt']),
    'layers/a/usr/local/opt/initd/links/l.txt',
  );
});

test('an unreadable machine directory fails that machine only, naming the directory', { skip }, () => {
  const result = buildWithUnreadable({ ...base, 'machines/m/etc/m.conf': 'm\n' }, ['machines/m']);
  assertDenied(result, 'machines/m', 'cannot read the machine directory');
  assert.match(
    result.stderr,
    /^ {2}make it readable and searchable for the user running homecloud \(chmod u\+rx machines\/m\), or move it out of machines\/$/m,
  );
});

test('a "!" link to an unreadable file names the link', { skip }, () => {
  assertDenied(
    buildWithUnreadable({ ...base, 'facts/m.secret': 's\n', 'layers/a/etc/!secret': { link: '../../../facts/m.secret' } }, ['facts/m.secret']),
    'layers/a/etc/!secret',
  );
});

test('unreadable inventory.json or homecloud.json: exit 2 naming the file', { skip }, () => {
  for (const file of ['inventory.json', 'homecloud.json']) {
    const result = buildWithUnreadable({ ...base, [file]: '{}' }, [file]);
    assert.equal(result.status, 2);
    assert.equal(result.stderr, `error: ${file}: cannot read: permission denied\n`);
  }
});

test('a "!" link loop: the message names the link and says too many levels of symbolic links', () => {
  const result = buildWithUnreadable({ ...base, 'layers/a/etc/!loop': { link: '!loop' } }, []);
  assert.equal(result.status, 1);
  assert.match(result.stderr, /^error: m: layers\/a\/etc\/!loop: .*too many levels of symbolic links/m);
  assert.match(result.stdout, /^other\s+built/m);
});
