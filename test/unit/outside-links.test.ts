// "!" links and linked templates read their target: only inside the
// repository, the standard layers (for their own links), or the directories
// homecloud.json's readOutside names.
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Builder } from '../../src/build/builder.ts';
import { HomecloudError } from '../../src/load/errors.ts';
import { loadModel } from '../../src/load/model.ts';
import { RepoPaths } from '../../src/load/repo.ts';
import {
  buildError,
  loadError,
  buildOne,
  layerList,
  makeRepo,
  manifestOf,
  modeOf,
  projectRoot,
  readTree,
  repoPaths,
  runCli,
  treeFile,
  writeFiles,
} from '../helpers/repo.ts';

/** A directory outside any repository, with a file x.pem (removed after the tests, like the repositories). */
function outsideDir(content = 'outside\n'): string {
  return realpathSync(makeRepo({ 'x.pem': content }));
}

function assertOutside(error: HomecloudError, link: string, target: string): void {
  assert.equal(error.toString().split('\n')[0], `${link}: links to ${target}, outside the repository`);
  assert.match(error.hint ?? '', /move the file into the repository \(secrets go in facts\/\)/);
  assert.ok(error.hint?.includes(`"readOutside": [${JSON.stringify(join(target, '..'))}]`), error.hint);
}

test('a "!" link to a file outside the repository is an error naming the link and its target; nothing is built', async () => {
  const outside = outsideDir();
  const root = makeRepo({ ...layerList('a'), 'layers/a/etc/ok.conf': 'ok\n', 'layers/a/etc/!cert.pem': { link: join(outside, 'x.pem') } });
  assertOutside(await buildError(root), 'layers/a/etc/!cert.pem', join(outside, 'x.pem'));
  assert.equal(existsSync(treeFile(root, 'm', '/etc/cert.pem')), false);
  assert.equal(existsSync(treeFile(root, 'm', '/etc/ok.conf')), false);
});

test('a relative "!" link that climbs out of the repository is an error too', async () => {
  const outside = outsideDir();
  const root = makeRepo({});
  const relative = join('../../..', '../'.repeat(root.split('/').length), outside, 'x.pem');
  writeFiles(root, { 'machines/m/etc/!cert.pem': { link: relative } });
  assertOutside(await buildError(root), 'machines/m/etc/!cert.pem', join(outside, 'x.pem'));
});

test('a symlinked template whose target is outside the repository is an error', async () => {
  const outside = outsideDir('name ENV_MACHINE\n');
  const root = makeRepo({ ...layerList('a'), 'layers/a/etc/t.m4.conf': { link: join(outside, 'x.pem') } });
  assertOutside(await buildError(root), 'layers/a/etc/t.m4.conf', join(outside, 'x.pem'));
  assert.equal(existsSync(treeFile(root, 'm', '/etc/t.conf')), false);
});

test('the resolved target counts: a link through a linked directory that leaves the repository is an error', async () => {
  const outside = outsideDir();
  const root = makeRepo({ ...layerList('a'), shared: { link: outside }, 'layers/a/etc/!cert.pem': { link: '../../../shared/x.pem' } });
  assertOutside(await buildError(root), 'layers/a/etc/!cert.pem', join(outside, 'x.pem'));
});

test('links inside the repository are fine, also when the repository is reached through a link', async () => {
  const root = makeRepo({
    ...layerList('a'),
    'layers/a/usr/local/share/doc/README': 'read me\n',
    'layers/a/etc/!about.txt': { link: '../usr/local/share/doc/README' },
    'layers/a/usr/local/share/tmpl/unit.txt': 'name ENV_MACHINE\n',
    'layers/a/etc/unit.m4.conf': { link: '../usr/local/share/tmpl/unit.txt' },
  });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(readTree(root, 'm', '/etc/about.txt'), 'read me\n');
  assert.equal(readTree(root, 'm', '/etc/unit.conf'), 'name m\n');
  const alias = `${root}-alias`;
  symlinkSync(root, alias);
  try {
    const viaAlias = (await new Builder(new RepoPaths(alias, join(projectRoot, 'layers'))).build({ machines: ['m'] })).machines[0]!;
    assert.notEqual(viaAlias.status, 'failed', viaAlias.error?.toString());
  } finally {
    rmSync(alias);
  }
});

test('a "!" link into facts/ stays secret (0600), also when facts/ is a link to a directory outside the repository', async () => {
  const root = makeRepo({ ...layerList('a'), 'facts/m.secret': 'TOKEN=s3cr3t\n', 'layers/a/etc/!token': { link: '../../../facts/m.secret' } });
  assert.equal((await buildOne(root, 'm')).status, 'built');
  assert.deepEqual({ ...manifestOf(root, 'm').entries['/etc/token'], sha256: '' }, { type: 'file', mode: '0600', sha256: '', secret: true });
  assert.equal(modeOf(treeFile(root, 'm', '/etc/token')), 0o600);

  const secrets = outsideDir();
  writeFileSync(join(secrets, 'm.secret'), 'TOKEN=elsewhere\n');
  const linked = makeRepo({ ...layerList('a'), facts: { link: secrets }, 'layers/a/etc/!token': { link: '../../../facts/m.secret' } });
  const result = await buildOne(linked, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(readTree(linked, 'm', '/etc/token'), 'TOKEN=elsewhere\n');
  assert.equal((manifestOf(linked, 'm').entries['/etc/token'] as { secret?: boolean }).secret, true);
});

test('readOutside allows links into the directories it names and below them; other directories stay closed', async () => {
  const outside = outsideDir('cert\n');
  mkdirSync(join(outside, 'sub'));
  writeFileSync(join(outside, 'sub', 'y.pem'), 'sub cert\n');
  const other = outsideDir('other\n');
  const root = makeRepo({
    ...layerList('a'),
    'homecloud.json': JSON.stringify({ readOutside: [outside] }),
    'layers/a/etc/!cert.pem': { link: join(outside, 'x.pem') },
    'layers/a/etc/!sub.pem': { link: join(outside, 'sub/y.pem') },
    'layers/a/etc/t.m4.conf': { link: join(outside, 'sub/y.pem') },
  });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(readTree(root, 'm', '/etc/cert.pem'), 'cert\n');
  assert.equal(readTree(root, 'm', '/etc/sub.pem'), 'sub cert\n');
  assert.equal(readTree(root, 'm', '/etc/t.conf'), 'sub cert\n');
  // Read from outside is not a secret of facts/: the file keeps its mode.
  assert.equal((manifestOf(root, 'm').entries['/etc/cert.pem'] as { secret?: boolean }).secret, undefined);

  writeFiles(root, { 'layers/a/etc/!other.pem': { link: join(other, 'x.pem') } });
  assertOutside(await buildError(root), 'layers/a/etc/!other.pem', join(other, 'x.pem'));
});

test('readOutside may name a link to a directory, or the directory a link resolves to', async () => {
  const outside = outsideDir('cert\n');
  const named = `${outside}-named`;
  symlinkSync(outside, named);
  try {
    // The setting names the link; the "!" link resolves to the real directory.
    const byLink = makeRepo({
      ...layerList('a'),
      'homecloud.json': JSON.stringify({ readOutside: [named] }),
      'layers/a/etc/!cert.pem': { link: join(outside, 'x.pem') },
    });
    assert.equal((await buildOne(byLink, 'm')).status, 'built');
    // The setting names the real directory; the "!" link goes through the link to it.
    const byTarget = makeRepo({
      ...layerList('a'),
      'homecloud.json': JSON.stringify({ readOutside: [`${outside}/`] }),
      'layers/a/etc/!cert.pem': { link: join(named, 'x.pem') },
    });
    assert.equal((await buildOne(byTarget, 'm')).status, 'built');
    assert.equal(readTree(byTarget, 'm', '/etc/cert.pem'), 'cert\n');
  } finally {
    rmSync(named);
  }
});

test('links of the standard layers may point inside the standard layers; outside them they are errors like any other', async () => {
  const stdlib = join(makeRepo({}), 'layers');
  cpSync(join(projectRoot, 'layers/_'), join(stdlib, '_'), { recursive: true, verbatimSymlinks: true });
  writeFiles(stdlib, { 'shared/doc/README': 'standard\n', '_/etc/!readme': { link: '../../shared/doc/README' } });
  const root = makeRepo({ 'machines/m/etc/own.conf': 'own\n' });
  const builder = () => new Builder(new RepoPaths(root, stdlib));
  const built = (await builder().build({ machines: ['m'] })).machines[0]!;
  assert.equal(built.status, 'built', built.error?.toString());
  assert.equal(readTree(root, 'm', '/etc/readme'), 'standard\n');

  // The repository's own links may not read the standard layers: they are outside it.
  writeFiles(root, { 'machines/m/etc/!borrowed': { link: join(stdlib, 'shared/doc/README') } });
  const borrowed = (await builder().build({ machines: ['m'] })).machines[0]!;
  assert.equal(borrowed.status, 'failed');
  assertOutside(borrowed.error!, 'machines/m/etc/!borrowed', realpathSync(join(stdlib, 'shared/doc/README')));
  rmSync(join(root, 'machines/m/etc/!borrowed'));

  const outside = outsideDir();
  writeFiles(stdlib, { '_/etc/!escape': { link: join(outside, 'x.pem') } });
  const escaped = (await builder().build({ machines: ['m'] })).machines[0]!;
  assert.equal(escaped.status, 'failed');
  assertOutside(escaped.error!, join(stdlib, '_/etc/!escape'), join(outside, 'x.pem'));
});

test('a link repointed outside the repository with the same content fails the next build (quick plan), and every build after it', async () => {
  const outside = outsideDir('same\n');
  const root = makeRepo({
    ...layerList('a'),
    'layers/a/etc/inside.pem': 'same\n',
    'layers/a/etc/!cert.pem': { link: 'inside.pem' },
    'layers/a/etc/t.m4.conf': { link: 'inside.pem' },
  });
  assert.equal((await buildOne(root, 'm')).status, 'built');
  for (const link of ['layers/a/etc/!cert.pem', 'layers/a/etc/t.m4.conf']) {
    writeFiles(root, { [link]: { link: join(outside, 'x.pem') } });
    for (const attempt of ['next build', 'the build after']) {
      const result = await buildOne(root, 'm');
      assert.equal(result.status, 'failed', `${link}, ${attempt}`);
      assertOutside(result.error!, link, join(outside, 'x.pem'));
    }
    writeFiles(root, { [link]: { link: 'inside.pem' } });
    const again = await buildOne(root, 'm');
    assert.equal(again.status, 'built', again.error?.toString());
  }
});

test('a link repointed outside while other files change (a full plan) fails the next build', async () => {
  const outside = outsideDir('same\n');
  const root = makeRepo({ ...layerList('a'), 'layers/a/etc/inside.pem': 'same\n', 'layers/a/etc/!cert.pem': { link: 'inside.pem' } });
  assert.equal((await buildOne(root, 'm')).status, 'built');
  writeFiles(root, { 'layers/a/etc/new.conf': 'new\n', 'layers/a/etc/!cert.pem': { link: join(outside, 'x.pem') } });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'failed');
  assertOutside(result.error!, 'layers/a/etc/!cert.pem', join(outside, 'x.pem'));
});

test('a link whose target turns into a link out of the repository fails the next build', async () => {
  const outside = outsideDir('same\n');
  const root = makeRepo({ ...layerList('a'), 'store/x.pem': 'same\n', 'layers/a/etc/!cert.pem': { link: '../../../store/x.pem' } });
  assert.equal((await buildOne(root, 'm')).status, 'built');
  writeFiles(root, { 'store/x.pem': { link: join(outside, 'x.pem') } });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'failed');
  assertOutside(result.error!, 'layers/a/etc/!cert.pem', join(outside, 'x.pem'));
});

test('taking a directory out of readOutside fails the next build of a machine that reads from it', async () => {
  const outside = outsideDir();
  const root = makeRepo({
    ...layerList('a'),
    'homecloud.json': JSON.stringify({ readOutside: [outside] }),
    'layers/a/etc/!cert.pem': { link: join(outside, 'x.pem') },
  });
  assert.equal((await buildOne(root, 'm')).status, 'built');
  writeFiles(root, { 'homecloud.json': '{"readOutside": []}' });
  assertOutside(await buildError(root), 'layers/a/etc/!cert.pem', join(outside, 'x.pem'));
  writeFiles(root, { 'homecloud.json': '{}' });
  assertOutside(await buildError(root), 'layers/a/etc/!cert.pem', join(outside, 'x.pem'));
});

test('the CLI reports a link outside the repository with either walker (native and JavaScript), exit 1, the other machines built', () => {
  const outside = outsideDir('same\n');
  for (const native of ['1', '0']) {
    const root = makeRepo({
      ...layerList('a'),
      'layers/a/etc/inside.pem': 'same\n',
      'layers/a/etc/!cert.pem': { link: 'inside.pem' },
      'machines/n/etc/n.conf': 'n\n',
    });
    const env = { HOMECLOUD_NATIVE: native };
    assert.equal(runCli(['-C', root, 'build'], { env }).status, 0);
    writeFiles(root, { 'layers/a/etc/!cert.pem': { link: join(outside, 'x.pem') } });
    for (const attempt of [1, 2]) {
      const run = runCli(['-C', root, 'build'], { env });
      assert.equal(run.status, 1, `HOMECLOUD_NATIVE=${native}, build ${attempt}: ${run.stderr}`);
      assert.match(run.stderr, new RegExp(`^error: m: layers/a/etc/!cert\\.pem: links to ${join(outside, 'x.pem')}, outside the repository$`, 'm'));
      assert.match(run.stdout, /^m\s+failed/m);
    }
    assert.equal(readTree(root, 'n', '/etc/n.conf'), 'n\n');
    const explain = runCli(['-C', root, 'explain', 'm', '/etc/cert.pem'], { env });
    assert.notEqual(explain.status, 0);
    assert.match(explain.stderr, /links to .*, outside the repository/);
  }
});

test('readOutside: absolute directories only, each once; not a list, not a path, an empty path are errors naming the place', async () => {
  const cases: [string, RegExp, number][] = [
    ['{\n  "readOutside": ["etc/ssl"]\n}\n', /^"etc\/ssl" in readOutside is not an absolute path$/, 19],
    ['{\n  "readOutside": ["/etc/ssl/", "/etc/ssl"]\n}\n', /^"\/etc\/ssl" appears twice in readOutside$/, 32],
    ['{\n  "readOutside": "/etc/ssl"\n}\n', /^the setting "readOutside" must be a list of absolute directory paths, not "\/etc\/ssl"$/, 18],
    ['{\n  "readOutside": [22]\n}\n', /^item 1 of the setting "readOutside" must be an absolute directory path in quotes, not 22$/, 19],
    ['{\n  "readOutside": [""]\n}\n', /^item 1 of the setting "readOutside" is empty$/, 19],
  ];
  for (const [text, message, column] of cases) {
    const error = await loadError(makeRepo({ 'machines/m/etc/x': '', 'homecloud.json': text }));
    assert.match(error.message, message, text);
    assert.deepEqual(error.where, { file: 'homecloud.json', line: 2, column }, text);
    assert.ok(error.hint, text);
  }
  const root = makeRepo({ 'machines/m/etc/x': '', 'homecloud.json': '{"readOutside": ["/etc/ssl/", "/srv//certs"]}' });
  assert.deepEqual((await loadModel(repoPaths(root))).settings.readOutside, ['/etc/ssl', '/srv/certs']);
});
