// FORMAT.md section 3: merging _, the selected layers and the machine's own directory.
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Builder } from '../../src/build/builder.ts';
import { build, buildError, buildOne, layerList, makeRepo, manifestOf, readTree, repoPaths, runCli, treeFile } from '../helpers/repo.ts';

test('the tree is the union of _, the selected layers and the machine directory', async () => {
  const root = makeRepo({
    ...layerList('a', 'b'),
    'layers/_/etc/base': 'base\n',
    'layers/a/etc/shared/a.conf': 'a\n',
    'layers/b/etc/shared/b.conf': 'b\n',
    'machines/m/etc/shared/m.conf': 'm\n',
  });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.deepEqual(Object.keys(manifestOf(root, 'm').entries).sort(), [
    '/etc',
    '/etc/base',
    '/etc/shared',
    '/etc/shared/a.conf',
    '/etc/shared/b.conf',
    '/etc/shared/m.conf',
    '/usr',
    '/usr/local',
    '/usr/local/opt',
    '/usr/local/opt/initd',
    '/usr/local/opt/initd/layers',
    '/usr/local/opt/initd/layers/10.txt',
  ]);
});

test('the same path with identical content in two layers is fine: one copy', async () => {
  const root = makeRepo({ ...layerList('a', 'b'), 'layers/a/etc/same.conf': 'same\n', 'layers/b/etc/same.conf': 'same\n' });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(readTree(root, 'm', '/etc/same.conf'), 'same\n');
  const { layout } = await new Builder(repoPaths(root)).layout('m');
  const origin = layout.provenance.get('/etc/same.conf')!;
  assert.equal(origin.relation, 'identical');
  assert.deepEqual([origin.entry.source.name, ...origin.others.map((o) => o.source.name)], ['a', 'b']);
});

test('identical content means identical output: a template and a plain file that give the same bytes agree', async () => {
  const root = makeRepo({ ...layerList('a', 'b'), 'layers/a/etc/x.m4.conf': 'host ENV_MACHINE\n', 'layers/b/etc/x.conf': 'host m\n' });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(readTree(root, 'm', '/etc/x.conf'), 'host m\n');
});

test('two layers with symlinks of the same target are fine; different targets are an error naming both', async () => {
  const same = makeRepo({ ...layerList('a', 'b'), 'layers/a/etc/l': { link: '../x' }, 'layers/b/etc/l': { link: '../x' } });
  assert.equal((await buildOne(same, 'm')).status, 'built');
  assert.equal(readlinkSync(treeFile(same, 'm', '/etc/l')), '../x');

  const different = makeRepo({ ...layerList('a', 'b'), 'layers/a/etc/l': { link: '../x' }, 'layers/b/etc/l': { link: '../y' } });
  const error = await buildError(different);
  assert.match(error.toString(), /layers\/a\/etc\/l/);
  assert.match(error.toString(), /layers\/b\/etc\/l/);
});

test('two layers with different content at one path is an error naming both source files (improvement)', async () => {
  const root = makeRepo({ ...layerList('a', 'b'), 'layers/a/etc/x.conf': 'from a\n', 'layers/b/etc/x.conf': 'from b\n', 'machines/n/etc/ok': 'ok\n' });
  const report = await build(root);
  const result = report.machines.find((m) => m.machine === 'm')!;
  assert.equal(result.status, 'failed');
  const text = result.error!.toString();
  assert.match(text, /layers\/a\/etc\/x\.conf/);
  assert.match(text, /layers\/b\/etc\/x\.conf/);
  assert.match(text, /\/etc\/x\.conf comes from two layers with different content/);
  assert.equal(existsSync(treeFile(root, 'm', '/etc/x.conf')), false, 'the alphabetically last layer does not silently win');
  assert.equal(report.machines.find((m) => m.machine === 'n')!.status, 'built');
});

test('with three layers, the error names the two that differ', async () => {
  const root = makeRepo({ ...layerList('a', 'b', 'c'), 'layers/a/x': '1\n', 'layers/b/x': '1\n', 'layers/c/x': '2\n' });
  const text = (await buildError(root)).toString();
  assert.match(text, /layers\/a\/x/);
  assert.match(text, /layers\/c\/x/);
});

test('a symlink in one layer against a file in another is an error naming both (no writing through the link)', async () => {
  const root = makeRepo({
    ...layerList('a', 'b'),
    'outside/target.conf': 'outside\n',
    'layers/a/etc/x.conf': { link: '../../../outside/target.conf' },
    'layers/b/etc/x.conf': 'from b\n',
  });
  const text = (await buildError(root)).toString();
  assert.match(text, /layers\/a\/etc\/x\.conf/);
  assert.match(text, /layers\/b\/etc\/x\.conf/);
  assert.equal(readFileSync(join(root, 'outside/target.conf'), 'utf8'), 'outside\n');
});

test("the machine's own file wins over a layer's, and --verbose says so", async () => {
  const root = makeRepo({ ...layerList('a'), 'layers/a/etc/x.conf': 'layer\n', 'machines/m/etc/x.conf': 'machine\n' });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(readTree(root, 'm', '/etc/x.conf'), 'machine\n');
  assert.deepEqual(result.notes, ['machines/m/etc/x.conf overrides layers/a/etc/x.conf']);

  const fresh = makeRepo({ ...layerList('a'), 'layers/a/etc/x.conf': 'layer\n', 'machines/m/etc/x.conf': 'machine\n' });
  const cli = runCli(['-C', fresh, 'build', '--verbose']);
  assert.equal(cli.status, 0, cli.stderr);
  assert.match(cli.stdout, /machines\/m\/etc\/x\.conf overrides layers\/a\/etc\/x\.conf/);
  const quiet = makeRepo({ ...layerList('a'), 'layers/a/etc/x.conf': 'layer\n', 'machines/m/etc/x.conf': 'machine\n' });
  assert.doesNotMatch(runCli(['-C', quiet, 'build']).stdout, /overrides/);
});

test("the machine's file replaces a layer's symlink with a regular file and does not write through it", async () => {
  const root = makeRepo({
    ...layerList('a'),
    'outside/target.conf': 'outside\n',
    'layers/a/etc/x.conf': { link: '../../../outside/target.conf' },
    'machines/m/etc/x.conf': 'machine\n',
  });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.ok(lstatSync(treeFile(root, 'm', '/etc/x.conf')).isFile());
  assert.equal(readTree(root, 'm', '/etc/x.conf'), 'machine\n');
  assert.equal(readFileSync(join(root, 'outside/target.conf'), 'utf8'), 'outside\n');
});

test("the machine's own file overrides several layers that disagree", async () => {
  const root = makeRepo({ ...layerList('a', 'b'), 'layers/a/x': 'a\n', 'layers/b/x': 'b\n', 'machines/m/x': 'm\n' });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(readTree(root, 'm', '/x'), 'm\n');
  assert.deepEqual(result.notes, ['machines/m/x overrides layers/a/x', 'machines/m/x overrides layers/b/x']);
});

test('a file against a directory is an error naming both, whichever layer has the file', async () => {
  for (const [fileLayer, dirLayer] of [
    ['a', 'b'],
    ['b', 'a'],
  ] as const) {
    const root = makeRepo({ ...layerList('a', 'b'), [`layers/${fileLayer}/etc/x`]: 'file\n', [`layers/${dirLayer}/etc/x/inner`]: 'inner\n' });
    const text = (await buildError(root)).toString();
    assert.match(text, new RegExp(`layers/${fileLayer}/etc/x`), text);
    assert.match(text, new RegExp(`layers/${dirLayer}/etc/x`), text);
  }
});

test("the machine's file does not override a layer's directory: that is an error naming both", async () => {
  const root = makeRepo({ ...layerList('a'), 'layers/a/etc/x/inner': 'inner\n', 'machines/m/etc/x': 'file\n' });
  const text = (await buildError(root)).toString();
  assert.match(text, /machines\/m\/etc\/x/);
  assert.match(text, /layers\/a\/etc\/x/);
});

test('a symlink in one layer where another has a directory is an error naming both', async () => {
  const root = makeRepo({ ...layerList('a', 'b'), 'layers/a/usr/local/share': { link: '/srv/share' }, 'layers/b/usr/local/share/doc': 'doc\n' });
  const text = (await buildError(root)).toString();
  assert.match(text, /layers\/a\/usr\/local\/share/);
  assert.match(text, /layers\/b\/usr\/local\/share/);
});

test('two files of the machine directory making one output path is an error naming both', async () => {
  const root = makeRepo({ 'machines/m/etc/x.m4.conf': 'a\n', 'machines/m/etc/x.conf': 'b\n' });
  const text = (await buildError(root)).toString();
  assert.match(text, /machines\/m\/etc\/x\.m4\.conf/);
  assert.match(text, /machines\/m\/etc\/x\.conf/);
});
