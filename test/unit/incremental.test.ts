// Incremental builds: nothing changed -> nothing read but metadata and nothing written;
// what changed is rewritten; what should not exist disappears; interrupted builds are repaired.
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Builder } from '../../src/build/builder.ts';
import { scanTree } from '../../src/build/tree.ts';
import { spyFs } from '../helpers/fs-spy.ts';
import {
  build,
  buildOne,
  layerList,
  makeRepo,
  manifestOf,
  modeOf,
  preludeOnlyBase,
  readTree,
  repoPaths,
  runCli,
  treeFile,
  writeFiles,
  type FixtureFile,
} from '../helpers/repo.ts';

const old = new Date('2001-02-03T04:05:06Z');

/** Backdate every output of a machine's tree, so that any rewrite shows in its mtime. */
function backdateTree(root: string, machine = 'm'): void {
  const visit = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const stats = lstatSync(path);
      if (stats.isDirectory()) visit(path);
      else if (stats.isFile()) utimesSync(path, old, old);
    }
  };
  visit(join(root, 'var/build', machine, 'tree'));
}

function isBackdated(root: string, path: string, machine = 'm'): boolean {
  return statSync(treeFile(root, machine, path)).mtimeMs === old.getTime();
}

/** The tree on disk must be exactly what the manifest says (types, modes, hashes, link targets). */
function assertTreeMatchesManifest(root: string, machine = 'm'): void {
  assert.deepEqual(scanTree(join(root, 'var/build', machine, 'tree')), stripSecret(manifestOf(root, machine).entries));
}

function stripSecret(entries: Record<string, object>): Record<string, object> {
  return Object.fromEntries(
    Object.entries(entries).map(([path, entry]) => [path, Object.fromEntries(Object.entries(entry).filter(([key]) => key !== 'secret'))]),
  );
}

const webRepo: Record<string, FixtureFile> = {
  ...layerList('web'),
  'layers/web/etc/web/a.conf': 'a\n',
  'layers/web/etc/web/b.conf': 'b\n',
  'layers/web/etc/web/site.m4.conf': 'server_name ENV_MACHINE.example;\nport m5_or([ENV_PORT], [80]);\n',
  'layers/web/etc/web/kept': { link: 'a.conf' },
  'machines/m/usr/local/opt/initd/links/10.txt': '/usr/local/lib/systemd/system/multi-user.target.wants/web.service ../web.service\n',
  'facts/m.json': '{"ENV_PORT": 8080}',
  'facts/m.env': 'ENV_TOKEN=t0k3n\n',
};

test('a second build with no change reports up to date, reads only metadata and writes nothing', async () => {
  const root = makeRepo(webRepo);
  assert.equal((await buildOne(root, 'm')).status, 'built');
  const { result, calls } = await spyFs(() => build(root));
  assert.deepEqual(
    result.machines.map((m) => [m.machine, m.status, m.written, m.removed]),
    [['m', 'up-to-date', 0, 0]],
  );
  // Only the up-to-date stamp, which every build removes first and one that finds nothing to do writes (up-to-date.test.ts).
  assert.deepEqual(
    calls.writes.filter((call) => !call.endsWith('/var/build/up-to-date.json')),
    [],
    'nothing else is written',
  );
  const sourceReads = calls.reads
    .filter((call) => call.includes(root))
    .map((call) => call.replace(root, ''))
    .filter((call) => !/^readFileSync \/var\/build\/(state|listings|up-to-date)\.json$/.test(call) && !call.startsWith('readdirSync /machines'));
  // Only the machines' layer lists are read (they say which directories to look at); no layer, fact or tree content.
  for (const call of sourceReads) assert.match(call, /^(readFileSync|readdirSync) \/machines\/m\/usr\/local\/opt\/initd\/layers(\/10\.txt)?$/, call);

  const cli = runCli(['-C', root, 'build']);
  assert.equal(cli.status, 0, cli.stderr);
  assert.match(cli.stdout, /up to date/);
});

test('unchanged outputs keep their mtime; one changed file rewrites only it', async () => {
  const root = makeRepo(webRepo);
  await buildOne(root, 'm');
  backdateTree(root);
  writeFiles(root, { 'layers/web/etc/web/b.conf': 'b changed\n' });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built');
  assert.equal(result.written, 1);
  assert.equal(result.removed, 0);
  assert.equal(readTree(root, 'm', '/etc/web/b.conf'), 'b changed\n');
  assert.equal(isBackdated(root, '/etc/web/b.conf'), false);
  for (const path of ['/etc/web/a.conf', '/etc/web/site.conf', '/usr/local/opt/initd/links/10.txt']) assert.ok(isBackdated(root, path), path);
  assertTreeMatchesManifest(root);
});

test('a file written again over a longer or a shorter one holds exactly its new bytes', async () => {
  const root = makeRepo(webRepo);
  await buildOne(root, 'm');
  for (const [plain, template] of [
    ['b, now much longer than it was\n'.repeat(40), 'server_name ENV_MACHINE.example;\n'.repeat(30)],
    ['b\n', 'x\n'],
  ]) {
    writeFiles(root, { 'layers/web/etc/web/b.conf': plain!, 'layers/web/etc/web/site.m4.conf': template! });
    const result = await buildOne(root, 'm');
    assert.equal(result.written, 2);
    assert.equal(readTree(root, 'm', '/etc/web/b.conf'), plain);
    assert.equal(readTree(root, 'm', '/etc/web/site.conf'), template!.replaceAll('ENV_MACHINE', 'm'));
    assertTreeMatchesManifest(root);
  }
});

test('touching a source without changing it rewrites nothing', async () => {
  const root = makeRepo(webRepo);
  await buildOne(root, 'm');
  backdateTree(root);
  const now = new Date();
  utimesSync(join(root, 'layers/web/etc/web/a.conf'), now, now);
  utimesSync(join(root, 'layers/web/etc/web/site.m4.conf'), now, now);
  const result = await buildOne(root, 'm');
  assert.equal(result.written, 0);
  assert.equal(result.removed, 0);
  assert.ok(isBackdated(root, '/etc/web/a.conf'));
  assert.ok(isBackdated(root, '/etc/web/site.conf'));
});

test('a mode change alone changes the output mode', async () => {
  const root = makeRepo(webRepo);
  await buildOne(root, 'm');
  writeFiles(root, { 'layers/web/etc/web/a.conf': { content: 'a\n', mode: 0o600 } });
  await buildOne(root, 'm');
  assert.equal(modeOf(treeFile(root, 'm', '/etc/web/a.conf')), 0o600);
  assertTreeMatchesManifest(root);
});

test('adding or removing a .pin file changes only its directory mode', async () => {
  const root = makeRepo({ ...layerList('a'), 'layers/a/var/lib/local/app/data': 'd\n' });
  await buildOne(root, 'm');
  assert.equal(modeOf(treeFile(root, 'm', '/var/lib/local/app')), 0o755);
  writeFiles(root, { 'layers/a/var/lib/local/app/.pin': '' });
  await buildOne(root, 'm');
  assert.equal(modeOf(treeFile(root, 'm', '/var/lib/local/app')), 0o1755);
  rmSync(join(root, 'layers/a/var/lib/local/app/.pin'));
  await buildOne(root, 'm');
  assert.equal(modeOf(treeFile(root, 'm', '/var/lib/local/app')), 0o755);
  assertTreeMatchesManifest(root);
});

test('a fact change rebuilds only that machine', async () => {
  const root = makeRepo({
    ...webRepo,
    'machines/n/usr/local/opt/initd/layers/10.txt': '+ web\n',
    'facts/n.json': '{"ENV_PORT": 9090}',
  });
  await build(root);
  backdateTree(root, 'm');
  backdateTree(root, 'n');
  writeFiles(root, { 'facts/m.json': '{"ENV_PORT": 8443}' });
  const report = await build(root);
  const byName = Object.fromEntries(report.machines.map((m) => [m.machine, m]));
  assert.equal(byName.m!.status, 'built');
  assert.equal(byName.m!.written, 1);
  assert.equal(byName.n!.status, 'up-to-date');
  assert.match(readTree(root, 'm', '/etc/web/site.conf'), /port 8443;/);
  assert.equal(isBackdated(root, '/etc/web/site.conf', 'm'), false);
  assert.ok(isBackdated(root, '/etc/web/site.conf', 'n'));
  assert.ok(isBackdated(root, '/etc/web/a.conf', 'm'));
});

test('a removed source file disappears from the tree and the manifest', async () => {
  const root = makeRepo(webRepo);
  await buildOne(root, 'm');
  rmSync(join(root, 'layers/web/etc/web/b.conf'));
  rmSync(join(root, 'layers/web/etc/web/kept'));
  const result = await buildOne(root, 'm');
  assert.equal(result.removed, 2);
  assert.equal(existsSync(treeFile(root, 'm', '/etc/web/b.conf')), false);
  assert.throws(() => lstatSync(treeFile(root, 'm', '/etc/web/kept')));
  assert.equal(manifestOf(root, 'm').entries['/etc/web/b.conf'], undefined);
  assertTreeMatchesManifest(root);
});

test('a removed layer disappears from the tree, directories included', async () => {
  const root = makeRepo({
    ...webRepo,
    'layers/web/srv/www/index.html': 'hi\n',
    'machines/m/usr/local/opt/initd/layers/10.txt': '+ web\n+ db\n',
    'layers/db/etc/db.conf': 'db\n',
  });
  await buildOne(root, 'm');
  assert.ok(existsSync(treeFile(root, 'm', '/srv/www/index.html')));
  writeFiles(root, { 'machines/m/usr/local/opt/initd/layers/10.txt': '+ db\n' });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  for (const gone of ['/srv', '/etc/web', '/etc/web/a.conf']) assert.equal(existsSync(treeFile(root, 'm', gone)), false, gone);
  assert.equal(readTree(root, 'm', '/etc/db.conf'), 'db\n');
  assertTreeMatchesManifest(root);
});

test('what is remembered of a source that no machine uses any more is forgotten: the next build would sign it first', async () => {
  const root = makeRepo({
    ...webRepo,
    'machines/m/usr/local/opt/initd/layers/10.txt': '+ web\n+ db\n',
    'layers/db/etc/db.conf': 'db\n',
  });
  const sources = () => Object.keys((JSON.parse(readFileSync(join(root, 'var/build/state.json'), 'utf8')) as { sources: object }).sources);
  const files = (dir: string, layer: string) => readdirSync(join(root, 'var/build', dir)).filter((name) => name.startsWith(`${layer}-`));
  await build(root);
  for (const layer of ['web', 'db']) {
    assert.ok(sources().includes(join(root, 'layers', layer)), layer);
    assert.notDeepEqual(files('hashes', layer), [], layer);
    assert.notDeepEqual(files('trees', layer), [], layer);
  }
  writeFiles(root, { 'machines/m/usr/local/opt/initd/layers/10.txt': '+ db\n' });
  await build(root);
  assert.equal(sources().includes(join(root, 'layers/web')), false);
  assert.deepEqual([...files('hashes', 'web'), ...files('trees', 'web')], []);
  assert.ok(sources().includes(join(root, 'layers/db')));
  assert.notDeepEqual(files('trees', 'db'), []);
  // Built again from nothing, the same.
  const again = await build(root);
  assert.ok(again.machines.every((machine) => machine.status === 'up-to-date'));
});

test('a changed declared link changes in the tree; a removed one disappears with the directories made for it', async () => {
  const root = makeRepo({ ...webRepo, ...preludeOnlyBase });
  const link = '/usr/local/lib/systemd/system/multi-user.target.wants/web.service';
  await buildOne(root, 'm');
  writeFiles(root, { 'machines/m/usr/local/opt/initd/links/10.txt': `${link} /dev/null\n` });
  await buildOne(root, 'm');
  assert.deepEqual(manifestOf(root, 'm').entries[link], { type: 'link', target: '/dev/null' });
  assertTreeMatchesManifest(root);
  writeFiles(root, { 'machines/m/usr/local/opt/initd/links/10.txt': '# none\n' });
  await buildOne(root, 'm');
  assert.equal(existsSync(treeFile(root, 'm', '/usr/local/lib')), false, 'parents created only for the link are gone');
  assertTreeMatchesManifest(root);
});

test('a file that becomes a directory, and back, is replaced in the tree', async () => {
  const root = makeRepo({ ...layerList('a'), 'layers/a/etc/x': 'file\n' });
  await buildOne(root, 'm');
  rmSync(join(root, 'layers/a/etc/x'));
  writeFiles(root, { 'layers/a/etc/x/inner': 'inner\n' });
  await buildOne(root, 'm');
  assert.equal(readTree(root, 'm', '/etc/x/inner'), 'inner\n');
  assertTreeMatchesManifest(root);
  rmSync(join(root, 'layers/a/etc/x'), { recursive: true });
  writeFiles(root, { 'layers/a/etc/x': { link: 'elsewhere' } });
  await buildOne(root, 'm');
  assert.ok(lstatSync(treeFile(root, 'm', '/etc/x')).isSymbolicLink());
  assertTreeMatchesManifest(root);
});

test('a "!" link follows its target: a changed target changes the output', async () => {
  const root = makeRepo({ ...layerList('a'), 'facts/m.secret': 'one\n', 'layers/a/etc/!secret': { link: '../../../facts/m.secret' } });
  await buildOne(root, 'm');
  assert.equal(readTree(root, 'm', '/etc/secret'), 'one\n');
  writeFiles(root, { 'facts/m.secret': 'two two\n' });
  assert.equal((await buildOne(root, 'm')).status, 'built');
  assert.equal(readTree(root, 'm', '/etc/secret'), 'two two\n');
});

test('a changed prelude in the base layer re-renders the templates', async () => {
  const root = makeRepo({ ...layerList('a'), 'layers/_/usr/local/include/m4/00.m4': "m4_define(`m5_v', `one')m4_dnl\n", 'layers/a/etc/t.m4.conf': 'm5_v\n' });
  await buildOne(root, 'm');
  assert.equal(readTree(root, 'm', '/etc/t.conf'), 'one\n');
  writeFiles(root, { 'layers/_/usr/local/include/m4/00.m4': "m4_define(`m5_v', `three')m4_dnl\n" });
  await buildOne(root, 'm');
  assert.equal(readTree(root, 'm', '/etc/t.conf'), 'three\n');
});

test('an interrupted build (marker left, tree damaged) is verified and repaired by the next build', async () => {
  const root = makeRepo(webRepo);
  await buildOne(root, 'm');
  backdateTree(root);
  const dir = join(root, 'var/build/m');
  writeFileSync(join(dir, 'building'), '');
  // Same size, different bytes: only a content check finds it.
  writeFileSync(treeFile(root, 'm', '/etc/web/a.conf'), 'A\n');
  utimesSync(treeFile(root, 'm', '/etc/web/a.conf'), old, old);
  writeFileSync(treeFile(root, 'm', '/etc/web/stray.conf'), 'stray\n');
  rmSync(treeFile(root, 'm', '/etc/web/b.conf'));
  writeFiles(join(dir, 'tree'), { 'etc/web/kept': { link: 'b.conf' } });
  writeFiles(join(dir, 'tree'), { 'etc/web/site.conf': { content: readTree(root, 'm', '/etc/web/site.conf'), mode: 0o666 } });
  utimesSync(treeFile(root, 'm', '/etc/web/site.conf'), old, old);

  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built');
  assert.equal(existsSync(join(dir, 'building')), false, 'the marker is removed after a complete build');
  assert.equal(readTree(root, 'm', '/etc/web/a.conf'), 'a\n');
  assert.equal(readTree(root, 'm', '/etc/web/b.conf'), 'b\n');
  assert.equal(existsSync(treeFile(root, 'm', '/etc/web/stray.conf')), false);
  assert.equal(modeOf(treeFile(root, 'm', '/etc/web/site.conf')), 0o644);
  assert.ok(isBackdated(root, '/etc/web/site.conf'), 'right content is not rewritten, only its mode fixed');
  assertTreeMatchesManifest(root);
});

test('a build that crashes midway leaves a tree the next build does not trust, even when the sources are changed back', async () => {
  const root = makeRepo(webRepo);
  await buildOne(root, 'm');
  const before = readFileSync(join(root, 'var/build/m/manifest.json'), 'utf8');
  writeFiles(root, { 'layers/web/etc/web/a.conf': 'a2\n', 'layers/web/etc/web/b.conf': 'b2\n' });
  let writes = 0;
  const tree = join(root, 'var/build/m/tree');
  const { result } = await spyFs(
    () => buildOne(root, 'm'),
    (name, path) => {
      // Each file written into the tree gets its mode set next: crash on the second.
      if (name === 'chmodSync' && path.startsWith(tree) && ++writes === 2) throw Object.assign(new Error('simulated crash'), { code: 'EIO' });
    },
  );
  assert.equal(result.status, 'failed');
  assert.equal(readTree(root, 'm', '/etc/web/a.conf'), 'a2\n', 'the first file was replaced before the crash');
  assert.equal(readFileSync(join(root, 'var/build/m/manifest.json'), 'utf8'), before, 'the manifest still describes the old tree');
  assert.ok(existsSync(join(root, 'var/build/m/building')));

  // Back to the sources the manifest and the state were made from: the half-new tree must not be trusted.
  writeFiles(root, { 'layers/web/etc/web/a.conf': 'a\n', 'layers/web/etc/web/b.conf': 'b\n' });
  const repaired = await buildOne(root, 'm');
  assert.equal(repaired.status, 'built');
  assert.equal(readTree(root, 'm', '/etc/web/a.conf'), 'a\n');
  assert.equal(readTree(root, 'm', '/etc/web/b.conf'), 'b\n');
  assert.equal(existsSync(join(root, 'var/build/m/building')), false);
  assertTreeMatchesManifest(root);
});

test('a lost manifest or damaged state makes the next build verify the tree', async () => {
  const root = makeRepo(webRepo);
  await buildOne(root, 'm');
  rmSync(join(root, 'var/build/m/manifest.json'));
  writeFileSync(treeFile(root, 'm', '/etc/web/a.conf'), 'damaged\n');
  assert.equal((await buildOne(root, 'm')).status, 'built');
  assert.equal(readTree(root, 'm', '/etc/web/a.conf'), 'a\n');
  assertTreeMatchesManifest(root);

  writeFileSync(join(root, 'var/build/state.json'), '{"broken');
  writeFileSync(join(root, 'var/build/hashes.json'), 'nonsense');
  writeFiles(root, { 'layers/web/etc/web/b.conf': 'b3\n' });
  assert.equal((await buildOne(root, 'm')).status, 'built');
  assert.equal(readTree(root, 'm', '/etc/web/b.conf'), 'b3\n');
  assertTreeMatchesManifest(root);
});

test('a failing machine leaves its previous tree and manifest untouched and does not stop the others', async () => {
  const root = makeRepo({
    ...webRepo,
    'layers/web/etc/web/need.m4.conf': 'x\n',
    'machines/n/usr/local/opt/initd/layers/10.txt': '+ web\n',
  });
  await build(root);
  const manifest = readFileSync(join(root, 'var/build/m/manifest.json'), 'utf8');
  backdateTree(root, 'm');
  writeFiles(root, {
    'layers/web/etc/web/a.conf': 'a changed\n',
    'machines/m/etc/web/need.m4.conf': 'one\nm5_assert([ENV_MISSING])\n',
  });
  const report = await build(root);
  const byName = Object.fromEntries(report.machines.map((r) => [r.machine, r]));
  assert.equal(byName.m!.status, 'failed');
  assert.deepEqual(byName.m!.error!.where, { file: 'machines/m/etc/web/need.m4.conf', line: 2 });
  assert.equal(byName.n!.status, 'built');
  assert.equal(readTree(root, 'n', '/etc/web/a.conf'), 'a changed\n');
  assert.equal(readTree(root, 'm', '/etc/web/a.conf'), 'a\n', 'nothing of the failed build reached the tree');
  assert.ok(isBackdated(root, '/etc/web/a.conf', 'm'));
  assert.equal(readFileSync(join(root, 'var/build/m/manifest.json'), 'utf8'), manifest);
  assert.equal(existsSync(join(root, 'var/build/m/building')), false);

  writeFiles(root, { 'facts/m.json': '{"ENV_PORT": 8080, "ENV_MISSING": "here"}' });
  const fixed = await buildOne(root, 'm');
  assert.equal(fixed.status, 'built', fixed.error?.toString());
  assert.equal(readTree(root, 'm', '/etc/web/a.conf'), 'a changed\n');
  assert.equal(readTree(root, 'm', '/etc/web/need.conf'), 'one\nhere\n');
});

test('a machine removed from the repository loses its build output', async () => {
  const root = makeRepo({ ...layerList('web'), 'layers/web/etc/x': 'x\n', 'machines/gone/etc/y': 'y\n' });
  await build(root);
  assert.ok(existsSync(join(root, 'var/build/gone/manifest.json')));
  rmSync(join(root, 'machines/gone'), { recursive: true });
  const report = await build(root);
  assert.deepEqual(
    report.machines.map((m) => m.machine),
    ['m'],
  );
  assert.equal(existsSync(join(root, 'var/build/gone')), false);
});

test('a warm builder told of a changed "!" link target outside the layers rebuilds what reads it', async () => {
  const root = makeRepo({
    ...layerList('web'),
    'facts/token.txt': 'one\n',
    'layers/web/etc/!token': { link: '../../../facts/token.txt' },
  });
  const builder = new Builder(repoPaths(root));
  await builder.build();
  assert.equal(readTree(root, 'm', '/etc/token'), 'one\n');
  writeFiles(root, { 'facts/token.txt': 'two\n' });
  const report = await builder.build({ changed: [join(root, 'facts/token.txt')] });
  assert.equal(report.machines[0]!.status, 'built');
  assert.equal(readTree(root, 'm', '/etc/token'), 'two\n');
});
