// FORMAT.md section 2: which layers a machine gets.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Builder } from '../../src/build/builder.ts';
import { machineSources } from '../../src/load/layers.ts';
import { RepoPaths } from '../../src/load/repo.ts';
import { build, buildError, buildOne, layerList, makeRepo, projectRoot, readTree, repoPaths, treeFile, writeFiles } from '../helpers/repo.ts';

const lists = 'machines/m/usr/local/opt/initd/layers';
const prelude = '/usr/local/include/m4/00-prelude.m4';

function selected(root: string, machine = 'm', stdlib = true): string[] {
  return machineSources(repoPaths(root), machine, stdlib).map((source) => source.name);
}

test('"+ name" lines select layers; the base layer _ comes first and the machine last', () => {
  const root = makeRepo({ ...layerList('web', 'db'), 'layers/web/a': '', 'layers/db/b': '' });
  assert.deepEqual(selected(root), ['_', 'web', 'db', 'machine:m']);
});

test('list files are read in sorted order and a name selected twice counts once, at its first occurrence', () => {
  const root = makeRepo({
    [`${lists}/20-late.txt`]: '+ a\n+ c\n',
    [`${lists}/10-early.txt`]: '+ b\n+ a\n+ b\n',
    'layers/a/x': '',
    'layers/b/x': '',
    'layers/c/y': '',
  });
  assert.deepEqual(selected(root), ['_', 'b', 'a', 'c', 'machine:m']);
});

test('comments, blank lines and lines of any other shape select nothing', async () => {
  const root = makeRepo({
    [`${lists}/10.txt`]: [
      '# + bogus1',
      '#+ bogus2',
      '',
      '+bogus3',
      '+  bogus4',
      ' + bogus5',
      '- bogus6',
      '+ bogus7 extra',
      '++ bogus8',
      'bogus9',
      '+ web',
      '',
    ].join('\n'),
    'layers/web/etc/web.conf': 'w\n',
  });
  assert.deepEqual(selected(root), ['_', 'web', 'machine:m']);
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
});

test('trailing blanks and CRLF line ends still select the layer', () => {
  const root = makeRepo({ [`${lists}/10.txt`]: '+ web  \r\n+ db\t\r\n', 'layers/web/a': '', 'layers/db/b': '' });
  assert.deepEqual(selected(root), ['_', 'web', 'db', 'machine:m']);
});

test('only *.txt files in the layers directory are read', () => {
  const root = makeRepo({
    [`${lists}/10.txt`]: '+ web\n',
    [`${lists}/10.txt.orig`]: '+ bogus\n',
    [`${lists}/README`]: '+ bogus\n',
    'layers/web/a': '',
  });
  assert.deepEqual(selected(root), ['_', 'web', 'machine:m']);
});

test('_ is always selected first, even when a list names it again', () => {
  const root = makeRepo({ [`${lists}/10.txt`]: '+ web\n+ _\n', 'layers/web/a': '' });
  assert.deepEqual(selected(root), ['_', 'web', 'machine:m']);
});

test('a machine directory without a layer list gets only _', async () => {
  const root = makeRepo({ 'machines/m/etc/own.conf': 'own\n' });
  assert.deepEqual(selected(root), ['_', 'machine:m']);
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(readTree(root, 'm', '/etc/own.conf'), 'own\n');
  assert.ok(existsSync(treeFile(root, 'm', prelude)), 'the standard base layer is deployed');
});

test('layers do not pull in other layers: a layer list inside a layer is only a file', async () => {
  const root = makeRepo({
    ...layerList('web'),
    'layers/web/usr/local/opt/initd/layers/50.txt': '+ db\n+ nonexistent\n',
    'layers/db/etc/db.conf': 'db\n',
  });
  assert.deepEqual(selected(root), ['_', 'web', 'machine:m']);
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(existsSync(treeFile(root, 'm', '/etc/db.conf')), false);
  assert.equal(readTree(root, 'm', '/usr/local/opt/initd/layers/50.txt'), '+ db\n+ nonexistent\n');
});

test('an unknown layer name is an error naming the list file and line (improvement: not a warning)', async () => {
  const root = makeRepo({
    [`${lists}/10.txt`]: '# layers\n\n+ web\n+ nope\n',
    'layers/web/a': '',
    'machines/other/etc/x': 'x\n',
  });
  const report = await build(root);
  const failed = report.machines.find((m) => m.machine === 'm')!;
  assert.equal(failed.status, 'failed');
  assert.deepEqual(failed.error!.where, { file: `${lists}/10.txt`, line: 4 });
  assert.match(failed.error!.toString(), /^machines\/m\/usr\/local\/opt\/initd\/layers\/10\.txt:4: unknown layer "nope"/);
  assert.equal(existsSync(treeFile(root, 'm', '/a')), false, 'nothing was built without the layer');
  assert.equal(report.machines.find((m) => m.machine === 'other')!.status, 'built', 'other machines still build');
});

test('an unknown layer name near a known one suggests it', async () => {
  const root = makeRepo({ ...layerList('nginz'), 'layers/nginx/a': '' });
  const error = await buildError(root);
  assert.equal(error.hint?.includes('"nginx"'), true, error.toString());
});

test('a name that is not a directory name is an error naming the file and line', async () => {
  for (const name of ['..', '../etc', 'a/b']) {
    const root = makeRepo({ [`${lists}/10.txt`]: `\n+ ${name}\n` });
    const error = await buildError(root);
    assert.deepEqual(error.where, { file: `${lists}/10.txt`, line: 2 }, name);
  }
});

test('a layer directory may be a symlink to a directory elsewhere', async () => {
  const root = makeRepo({ ...layerList('web'), 'shared/web/etc/web.conf': 'shared\n', 'layers/web': { link: '../shared/web' } });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(readTree(root, 'm', '/etc/web.conf'), 'shared\n');
});

test('without a repository layer of that name, the standard layer is used (the standard _ brings the prelude)', async () => {
  const root = makeRepo({ 'machines/m/etc/x': 'x\n' });
  await buildOne(root, 'm');
  assert.equal(readTree(root, 'm', prelude), readFileSync(join(projectRoot, 'layers/_', prelude), 'utf8'));
});

test("a repository's own _ shadows the standard base layer entirely", async () => {
  const root = makeRepo({ 'machines/m/etc/x': 'x\n', 'layers/_/etc/base.conf': 'mine\n' });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(readTree(root, 'm', '/etc/base.conf'), 'mine\n');
  assert.equal(existsSync(treeFile(root, 'm', prelude)), false, 'no file of the standard _ is deployed');
});

/** A repository with a standard library of its own (inside it, so the helper removes it), to test lookup of layers other than _. */
function withOwnStdlib(files: Record<string, string>) {
  const root = makeRepo(files);
  const std = join(root, 'std-layers');
  writeFiles(std, { '_/etc/std-base': 'std base\n', 'web/etc/web.conf': 'std web\n', 'web/etc/std-only.conf': 'std only\n' });
  return { root, builder: () => new Builder(new RepoPaths(root, std)) };
}

test('a selected name found only among the standard layers uses the standard layer', async () => {
  const { root, builder } = withOwnStdlib({ ...layerList('web') });
  const report = await builder().build();
  assert.equal(report.machines[0]!.status, 'built', report.machines[0]!.error?.toString());
  assert.equal(readTree(root, 'm', '/etc/web.conf'), 'std web\n');
  assert.equal(readTree(root, 'm', '/etc/std-only.conf'), 'std only\n');
});

test("a repository's own layer shadows the standard layer of the same name entirely", async () => {
  const { root, builder } = withOwnStdlib({ ...layerList('web'), 'layers/web/etc/web.conf': 'own web\n' });
  const report = await builder().build();
  assert.equal(report.machines[0]!.status, 'built', report.machines[0]!.error?.toString());
  assert.equal(readTree(root, 'm', '/etc/web.conf'), 'own web\n');
  assert.equal(existsSync(treeFile(root, 'm', '/etc/std-only.conf')), false);
});

test('with "stdlib": false, a name only the standard library has is an unknown layer', async () => {
  const { builder } = withOwnStdlib({ ...layerList('web'), 'layers/_/etc/base': 'b\n', 'homecloud.json': '{"stdlib": false}\n' });
  const report = await builder().build();
  const result = report.machines[0]!;
  assert.equal(result.status, 'failed');
  assert.deepEqual(result.error!.where, { file: `${lists}/10.txt`, line: 1 });
  assert.match(result.error!.message, /unknown layer "web"/);
});
