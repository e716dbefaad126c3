// V8's code cache of the command line's bundles: written once, used after, and only when it is the user's own.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { shortHash } from '../../src/util/short-hash.ts';
import { cliPath, makeRepo, projectRoot } from '../helpers/repo.ts';

const root = makeRepo({ 'machines/m/etc/m.conf': 'm\n' });
const caches: string[] = [];
after(() => {
  for (const cache of caches) rmSync(cache, { recursive: true, force: true });
});

function cacheDirectory(): string {
  const cache = mkdtempSync(join(tmpdir(), 'homecloud-cache-'));
  caches.push(cache);
  return cache;
}

/**
 * A build with its own cache directory and HOMECLOUD_TIMINGS (which says what the code cache did). It loads the
 * builder: the up-to-date stamp, which a build that finds nothing to do answers from, is removed first unless kept.
 */
function buildRun(cache: string, extra: Record<string, string> = {}, keepStamp = false) {
  if (!keepStamp) rmSync(join(root, 'var/build/up-to-date.json'), { force: true });
  const { NODE_OPTIONS: _, HOMECLOUD_CODE_CACHE: __, ...env } = process.env;
  const run = spawnSync(process.execPath, [cliPath, '-C', root, 'build'], {
    cwd: projectRoot,
    env: { ...env, XDG_CACHE_HOME: cache, HOMECLOUD_TIMINGS: '1', NO_COLOR: '1', ...extra },
    encoding: 'utf8',
  });
  assert.equal(run.status, 0, run.stderr);
  return run;
}

/** What the code cache did with each bundle as it loaded. */
function build(cache: string, extra: Record<string, string> = {}) {
  return Object.fromEntries(
    [...buildRun(cache, extra).stderr.matchAll(/^code cache (\S+): (none|rejected|used)$/gm)].map(([, bundle, what]) => [bundle, what]),
  );
}

const cacheFiles = (cache: string) => readdirSync(join(cache, 'homecloud', 'code')).map((name) => join(cache, 'homecloud', 'code', name));

test('the first run writes the cache, only its user may read or write it, and the next run uses it', () => {
  const cache = cacheDirectory();
  assert.deepEqual(build(cache), { 'cli.cjs': 'none', 'build.cjs': 'none', 'builder.cjs': 'none' });
  assert.equal(statSync(join(cache, 'homecloud', 'code')).mode & 0o777, 0o700);
  const files = cacheFiles(cache);
  assert.equal(files.length, 3);
  for (const file of files) assert.equal(statSync(file).mode & 0o777, 0o600, file);
  assert.deepEqual(build(cache), { 'cli.cjs': 'used', 'build.cjs': 'used', 'builder.cjs': 'used' });
});

test('a cache file others may write is not read but replaced, and a damaged one is rejected and replaced', () => {
  const cache = cacheDirectory();
  build(cache);
  const [cli] = cacheFiles(cache).filter((file) => file.includes('/cli.cjs-'));
  chmodSync(cli!, 0o666);
  assert.equal(build(cache)['cli.cjs'], 'none');
  assert.equal(statSync(cli!).mode & 0o777, 0o600);
  writeFileSync(cli!, Buffer.concat([Buffer.from('homecloud code cache: build:full build:up-to-date\n'), Buffer.alloc(4096, 7)]), { mode: 0o600 });
  assert.equal(build(cache)['cli.cjs'], 'rejected');
  assert.equal(build(cache)['cli.cjs'], 'used');
  // A file without the first line (an older homecloud's) is not handed to V8.
  writeFileSync(cli!, Buffer.alloc(4096, 7), { mode: 0o600 });
  assert.equal(build(cache)['cli.cjs'], 'none');
  assert.equal(build(cache)['cli.cjs'], 'used');
});

test('a run that takes a code path the cache was not written for writes it again, with both', async () => {
  const cache = cacheDirectory();
  const paths = () =>
    readFileSync(
      cacheFiles(cache).find((file) => file.includes('/builder.cjs-'))!,
      'latin1',
    )
      .split('\n', 1)[0]!
      .trimEnd();
  const done = (run: { stderr: string }) =>
    [...run.stderr.matchAll(/^code cache (\S+): (written for .*|removed)$/gm)].map(([, bundle, what]) => `${bundle}: ${what}`);
  rmSync(join(root, 'var'), { recursive: true, force: true });
  // The first build lays the machine out in full, a rare path: its caches are written, since there were none...
  assert.deepEqual(done(buildRun(cache)), ['cli.cjs: written for ~build:full', 'build.cjs: written for ~build:full', 'builder.cjs: written for ~build:full']);
  assert.equal(paths(), 'homecloud code cache: ~build:full');
  // V8's data starts 8-byte aligned (else V8 copies it before reading it): the line is padded to that.
  for (const file of cacheFiles(cache)) assert.equal((readFileSync(file, 'latin1').indexOf('\n') + 1) % 8, 0, file);
  // ...and the first run without it removes them, so that the next writes them without that path's functions.
  assert.deepEqual(done(buildRun(cache)), ['cli.cjs: removed', 'build.cjs: removed', 'builder.cjs: removed']);
  assert.deepEqual(done(buildRun(cache)), [
    'cli.cjs: written for build:up-to-date',
    'build.cjs: written for build:up-to-date',
    'builder.cjs: written for build:up-to-date',
  ]);
  assert.equal(paths(), 'homecloud code cache: build:up-to-date');
  assert.deepEqual(done(buildRun(cache)), []);
  // Answered from the up-to-date stamp: the builder's bundle is not loaded, and its cache stays as it was.
  await new Promise((resolve) => setTimeout(resolve, 60));
  buildRun(cache);
  assert.deepEqual(done(buildRun(cache, {}, true)), [
    'cli.cjs: written for build:stamped, build:up-to-date',
    'build.cjs: written for build:stamped, build:up-to-date',
  ]);
  assert.deepEqual(done(buildRun(cache, {}, true)), []);
  appendFileSync(join(root, 'machines/m/etc/m.conf'), 'more\n');
  assert.deepEqual(done(buildRun(cache, {}, true)), [
    'cli.cjs: written for build:quick, build:stamped, build:up-to-date',
    'build.cjs: written for build:quick, build:stamped, build:up-to-date',
    'builder.cjs: written for build:quick, build:up-to-date',
  ]);
  appendFileSync(join(root, 'machines/m/etc/m.conf'), 'more\n');
  assert.deepEqual(done(buildRun(cache)), []);
  // A full layout now uses the caches and leaves them as they are.
  writeFileSync(join(root, 'machines/m/etc/new.conf'), 'new\n');
  const full = buildRun(cache);
  assert.match(full.stderr, /^code cache builder\.cjs: used$/m);
  assert.deepEqual(done(full), []);
  assert.equal(paths(), 'homecloud code cache: build:up-to-date build:quick');
  rmSync(join(root, 'machines/m/etc/new.conf'));
});

test("a bundle's earlier caches are removed, another install's are kept", () => {
  const cache = cacheDirectory();
  const code = join(cache, 'homecloud', 'code');
  mkdirSync(code, { recursive: true, mode: 0o700 });
  const ours = join(code, `cli.cjs-${shortHash(join(projectRoot, 'dist'))}-1-1-v20.0.0-x64`);
  const theirs = join(code, `cli.cjs-${shortHash('/opt/other/dist')}-1-1-v20.0.0-x64`);
  for (const file of [ours, theirs]) writeFileSync(file, 'old', { mode: 0o600 });
  assert.equal(build(cache)['cli.cjs'], 'none');
  assert.equal(existsSync(ours), false);
  assert.equal(existsSync(theirs), true);
  assert.equal(cacheFiles(cache).length, 4);
});

test('HOMECLOUD_CODE_CACHE=0 compiles every time and writes nothing', () => {
  const cache = cacheDirectory();
  assert.deepEqual(build(cache, { HOMECLOUD_CODE_CACHE: '0' }), {});
  assert.deepEqual(readdirSync(cache), []);
});
