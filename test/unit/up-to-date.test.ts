// The up-to-date stamp: a build that finds every machine up to date stamps what that rested on, and a plain
// `homecloud build` trusts it only while every input it names is unchanged (build/up-to-date.ts). Every build of
// the tests also checks that the stamp says what the builder finds (helpers/repo.ts).
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Builder } from '../../src/build/builder.ts';
import { stampedUpToDate, writeUpToDateStamp } from '../../src/build/up-to-date.ts';
import { build, makeRepo, repoPaths, runCli, writeFiles } from '../helpers/repo.ts';

const copies: string[] = [];
after(() => {
  for (const dir of copies) rmSync(dir, { recursive: true, force: true });
});

const stampFile = (root: string) => join(root, 'var/build/up-to-date.json');

/** File times have a clock tick's grain: a stamp is only written for files older than that. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 60));

/** Build until every machine is up to date, and the stamp says so. */
async function stamped(root: string): Promise<void> {
  await build(root);
  await settle();
  const report = await build(root);
  assert.ok(
    report.machines.every((m) => m.status === 'up-to-date'),
    report.machines.map((m) => `${m.machine} ${m.status}`).join(', '),
  );
  assert.deepEqual(stampedUpToDate(repoPaths(root)), ['a', 'b']);
}

function fixture(): string {
  return makeRepo({
    'machines/a/usr/local/opt/initd/layers/10.txt': '+ web\n',
    'machines/b/usr/local/opt/initd/layers/10.txt': '+ web\n+ tools\n',
    'layers/web/usr/local/etc/web/site.conf': 'listen 80\n',
    'layers/web/usr/local/etc/web/name.m4.conf': 'name ENV_MACHINE\nm4_include([shared/fragment.m4])',
    'layers/tools/usr/local/bin/tool': { content: '#!/bin/sh\n', mode: 0o755 },
    'shared/fragment.m4': 'fragment\n',
    'facts/a.json': '{ "ENV_ROLE": "web" }\n',
    'inventory.json': '{ "a": { "host": "10.0.0.1" }, "b": { "host": "10.0.0.2" } }\n',
  });
}

test('a build that finds every machine up to date stamps it; a change to any input it read voids the stamp', async () => {
  const root = fixture();
  const changes: [string, () => void][] = [
    ['a layer file', () => appendFileSync(join(root, 'layers/web/usr/local/etc/web/site.conf'), '# more\n')],
    ['only the time of a layer file', () => utimesSync(join(root, 'layers/tools/usr/local/bin/tool'), new Date(), new Date(2020, 1, 1))],
    ['a layer list', () => appendFileSync(join(root, 'machines/a/usr/local/opt/initd/layers/10.txt'), '+ tools\n')],
    ['a new layer list', () => writeFiles(root, { 'machines/a/usr/local/opt/initd/layers/20.txt': '# none\n' })],
    ['a file a template includes', () => appendFileSync(join(root, 'shared/fragment.m4'), 'more\n')],
    ['a machine facts file', () => writeFiles(root, { 'facts/a.json': '{ "ENV_ROLE": "db" }\n' })],
    ['a new .env facts file', () => writeFiles(root, { 'facts/b.env': 'ENV_ROLE=db\n' })],
    ['the inventory', () => writeFiles(root, { 'inventory.json': '{ "a": { "host": "10.0.0.3" }, "b": { "host": "10.0.0.2" } }\n' })],
    ['new settings', () => writeFiles(root, { 'homecloud.json': '{ "generations": 3 }\n' })],
    ['probe facts', () => writeFiles(root, { 'var/facts/a.json': '{}\n' })],
    ['public material', () => writeFiles(root, { 'var/public/a/key': 'ssh-ed25519 AAAA\n' })],
    ['a new unused layer', () => writeFiles(root, { 'layers/other/usr/local/x': 'x\n' })],
    ['a machine directory without layers', () => mkdirSync(join(root, 'machines/c'))],
    ['the machine directory removed again', () => rmSync(join(root, 'machines/c'), { recursive: true })],
    ['a tree being changed', () => writeFileSync(join(root, 'var/build/a/building'), '')],
    ['a manifest removed', () => rmSync(join(root, 'var/build/b/manifest.json'))],
  ];
  await stamped(root);
  for (const [what, change] of changes) {
    change();
    assert.equal(stampedUpToDate(repoPaths(root)), undefined, `after ${what}, the stamp is void`);
    // The builder (which checks the stamp against what it finds, helpers/repo.ts) builds, or fails, and stamps again.
    const machines = existsSync(join(root, 'machines/c')) ? ['a', 'b', 'c'] : ['a', 'b'];
    await build(root);
    await settle();
    await build(root);
    assert.deepEqual(stampedUpToDate(repoPaths(root)), machines, `stamped again after ${what}`);
  }
});

test('any other build removes the stamp, and only a build of every machine, as it stands, writes one', async () => {
  const root = fixture();
  await stamped(root);
  await build(root, ['a']);
  assert.equal(existsSync(stampFile(root)), false, 'a build of one machine removes it');
  assert.equal(stampedUpToDate(repoPaths(root)), undefined);

  await stamped(root);
  await new Builder(repoPaths(root)).build({ rerender: true });
  assert.equal(existsSync(stampFile(root)), false, 'a build with --rerender writes none');

  await stamped(root);
  await new Builder(repoPaths(root)).build({ changed: [join(root, 'shared/fragment.m4')] });
  assert.equal(existsSync(stampFile(root)), false, "a watcher's build (told what changed) writes none");

  // A build that finds the machines up to date right after a file it reads changed writes none: file times have a clock
  // tick's grain, and the build may have read the file before it changed. Once the file has settled, it does.
  await stamped(root);
  writeFileSync(join(root, 'machines/README'), 'not a machine\n');
  const report = await build(root);
  assert.ok(report.machines.every((m) => m.status === 'up-to-date'));
  assert.equal(existsSync(stampFile(root)), false, 'no stamp over a file changed this moment');
  await settle();
  await build(root);
  assert.deepEqual(stampedUpToDate(repoPaths(root)), ['a', 'b']);
});

test('a stamp is for its own repository and homecloud, and a damaged one is ignored', async () => {
  const root = fixture();
  await stamped(root);
  const copy = mkdtempSync(join(tmpdir(), 'homecloud-moved-'));
  copies.push(copy);
  cpSync(root, copy, { recursive: true, preserveTimestamps: true });
  assert.equal(stampedUpToDate(repoPaths(copy)), undefined, 'a copy of the repository');

  const sandboxed = repoPaths(root);
  sandboxed.sandboxInventory = join(root, 'sandbox.json');
  assert.equal(stampedUpToDate(sandboxed), undefined, 'with --sandbox');

  writeFileSync(stampFile(root), '{ "format": ');
  assert.equal(stampedUpToDate(repoPaths(root)), undefined, 'damaged');
  writeFileSync(stampFile(root), '{ "format": "homecloud-build-0", "root": "/", "stdlib": "/", "machines": [], "files": [], "trees": [] }');
  assert.equal(stampedUpToDate(repoPaths(root)), undefined, 'of another format');
});

test('homecloud build answers from the stamp as the builder would, in text and JSON, and builds once something changed', async () => {
  const root = fixture();
  await stamped(root);
  const viaBuilder = runCli(['-C', root, 'build', '--json', 'a', 'b']);
  assert.equal(viaBuilder.status, 0, viaBuilder.stderr);
  await settle();
  await build(root);
  // HOMECLOUD_TIMINGS shows the builder's phases only when it runs.
  const viaStamp = runCli(['-C', root, 'build', '--json'], { env: { HOMECLOUD_TIMINGS: '1' } });
  assert.equal(viaStamp.status, 0, viaStamp.stderr);
  assert.doesNotMatch(viaStamp.stderr, /timing build/, 'the builder was not loaded');
  const withoutTime = (text: string) => ({ ...JSON.parse(text), milliseconds: 0 });
  assert.deepEqual(withoutTime(viaStamp.stdout), withoutTime(viaBuilder.stdout));
  const text = runCli(['-C', root, 'build', '--verbose'], { env: { HOMECLOUD_TIMINGS: '1' } });
  assert.doesNotMatch(text.stderr, /timing build/);
  assert.match(text.stdout, /^a {2}up to date\nb {2}up to date\nAll 2 machines are up to date \(\d+ ms\)\.\n$/);

  appendFileSync(join(root, 'layers/web/usr/local/etc/web/site.conf'), '# more\n');
  const changed = runCli(['-C', root, 'build'], { env: { HOMECLOUD_TIMINGS: '1' } });
  assert.equal(changed.status, 0, changed.stderr);
  assert.match(changed.stderr, /timing build/);
  assert.match(changed.stdout, /Built 2 of 2 machines/);
});

test('no stamp over a file that changed after the build began, which the build may have read before', () => {
  const root = fixture();
  const repo = repoPaths(root);
  mkdirSync(repo.build, { recursive: true });
  const file = join(root, 'facts/a.json');
  const stamp = { machines: ['a'], files: [file], trees: [[join(root, 'machines/a'), '0000000000000000']] as [string, string][] };
  writeFileSync(file, '{ "ENV_ROLE": "cache" }\n');
  writeUpToDateStamp(repo, stamp, Date.now() - 1000);
  assert.equal(existsSync(stampFile(root)), false, 'changed after the build began');
  writeUpToDateStamp(repo, stamp, Date.now() + 1000);
  assert.equal(existsSync(stampFile(root)), true, 'changed well before it');
});
