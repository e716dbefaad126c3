// FORMAT.md sections 8 and 9: inventory.json and homecloud.json.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { HomecloudError } from '../../src/load/errors.ts';
import { loadModel } from '../../src/load/model.ts';
import { build, buildError, buildOne, layerList, makeRepo, readTree, repoPaths, runCli, treeFile, writeFiles } from '../helpers/repo.ts';

/** The error a build of the whole repository throws before building any machine. */
async function loadError(root: string): Promise<HomecloudError> {
  try {
    await build(root);
  } catch (error) {
    assert.ok(error instanceof HomecloudError, String(error));
    return error;
  }
  assert.fail('the build should have failed');
}

test('inventory: host defaults to the machine name, user to root, options to none', async () => {
  const root = makeRepo({
    'machines/plain/etc/x': '',
    'inventory.json': '{"nuc": {"host": "192.168.1.20", "user": "admin", "options": ["-p", "2222"]}, "bare": {}}',
  });
  const model = await loadModel(repoPaths(root));
  assert.deepEqual(model.machines, ['bare', 'nuc', 'plain']);
  assert.deepEqual(model.inventory.nuc, { host: '192.168.1.20', user: 'admin', options: ['-p', '2222'] });
  assert.deepEqual(model.inventory.bare, { host: 'bare', user: 'root', options: [] });
  const ls = runCli(['-C', root, 'ls', '--json']);
  assert.equal(ls.status, 0, ls.stderr);
  const rows = (JSON.parse(ls.stdout) as { machines: { machine: string; address: string }[] }).machines;
  assert.deepEqual(Object.fromEntries(rows.map((r) => [r.machine, r.address])), { bare: 'root@bare', nuc: 'admin@192.168.1.20', plain: 'root@plain' });
});

test('a machine in the inventory without a directory builds with only _', async () => {
  const root = makeRepo({ 'inventory.json': '{"nuc": {"host": "10.0.0.2"}}' });
  const result = await buildOne(root, 'nuc');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.ok(existsSync(treeFile(root, 'nuc', '/usr/local/include/m4/00-prelude.m4')));
});

test('malformed inventory.json is an error naming file, line and column; the CLI exits 2', async () => {
  const root = makeRepo({ 'machines/m/etc/x': '', 'inventory.json': '{\n  "m": {\n    "host": "x",\n  }\n}\n' });
  const error = await loadError(root);
  assert.deepEqual(error.where, { file: 'inventory.json', line: 4, column: 3 });
  assert.match(error.toString(), /^inventory\.json:4:3: invalid JSON/);
  const cli = runCli(['-C', root, 'build']);
  assert.equal(cli.status, 2);
  assert.match(cli.stderr, /^error: inventory\.json:4:3: invalid JSON/);
});

test('inventory.json: comments and duplicate keys are errors with a location', async () => {
  const comment = makeRepo({ 'inventory.json': '{\n  // nuc\n  "nuc": {}\n}\n' });
  assert.deepEqual((await loadError(comment)).where, { file: 'inventory.json', line: 2, column: 3 });
  const duplicate = makeRepo({ 'inventory.json': '{\n  "nuc": {},\n  "nuc": {"host": "x"}\n}\n' });
  const error = await loadError(duplicate);
  assert.deepEqual(error.where, { file: 'inventory.json', line: 3, column: 3 });
  assert.match(error.message, /duplicate key "nuc"/);
});

test('an unknown key in an inventory entry is an error naming the key and where it is', async () => {
  const root = makeRepo({ 'inventory.json': '{\n  "nuc": {\n    "host": "x",\n    "port": 22\n  }\n}\n' });
  const error = await loadError(root);
  assert.match(error.message, /unknown key "port"/);
  assert.deepEqual(error.where, { file: 'inventory.json', line: 4, column: 5 });
});

test('a wrongly typed inventory value or a bad machine name is an error with a location', async () => {
  const typed = makeRepo({ 'inventory.json': '{\n  "nuc": {\n    "options": "-p 22"\n  }\n}\n' });
  const error = await loadError(typed);
  assert.equal(error.where?.file, 'inventory.json');
  assert.equal(error.where?.line, 3);
  assert.match(error.message, /nuc\.options/);
  const badName = makeRepo({ 'inventory.json': '{\n  "../evil": {}\n}\n' });
  const nameError = await loadError(badName);
  assert.equal(nameError.where?.file, 'inventory.json');
  assert.equal(nameError.where?.line, 2);
});

test('homecloud.json: malformed JSON is an error naming file, line and column', async () => {
  const root = makeRepo({ 'machines/m/etc/x': '', 'homecloud.json': '{\n  "stdlib": tru\n}\n' });
  const error = await loadError(root);
  assert.deepEqual(error.where, { file: 'homecloud.json', line: 2, column: 13 });
  const empty = makeRepo({ 'machines/m/etc/x': '', 'homecloud.json': '' });
  assert.deepEqual((await loadError(empty)).where, { file: 'homecloud.json', line: 1, column: 1 });
});

test('homecloud.json: an unknown setting is an error naming the key', async () => {
  const root = makeRepo({ 'machines/m/etc/x': '', 'homecloud.json': '{\n  "stdlib": true,\n  "colour": "blue"\n}\n' });
  const error = await loadError(root);
  assert.match(error.message, /unknown setting "colour"/);
  assert.deepEqual(error.where, { file: 'homecloud.json', line: 3, column: 3 });
  const cli = runCli(['-C', root, 'ls']);
  assert.equal(cli.status, 2);
  assert.match(cli.stderr, /^error: homecloud\.json:3:3: unknown setting "colour"/);
});

test('homecloud.json: a wrongly typed setting is an error with a location', async () => {
  const root = makeRepo({ 'machines/m/etc/x': '', 'homecloud.json': '{\n  "stdlib": "no"\n}\n' });
  const error = await loadError(root);
  assert.deepEqual(error.where, { file: 'homecloud.json', line: 2, column: 3 });
  assert.match(error.message, /stdlib/);
});

test('homecloud.json: all settings are optional; known ones are accepted', async () => {
  for (const text of ['{}', '{"stdlib": true, "jobs": 4, "generations": 3}']) {
    const root = makeRepo({ 'machines/m/etc/x': 'x\n', 'homecloud.json': text });
    assert.equal((await buildOne(root, 'm')).status, 'built', text);
  }
  const root = makeRepo({ 'machines/m/etc/x': '', 'homecloud.json': '{"jobs": 2, "generations": 7}' });
  assert.deepEqual((await loadModel(repoPaths(root))).settings, { stdlib: true, jobs: 2, generations: 7 });
});

test('"stdlib": false: a repository carries its own base layer and gets nothing of the standard library', async () => {
  const root = makeRepo({
    ...layerList('web'),
    'homecloud.json': '{"stdlib": false}',
    'layers/_/usr/local/include/m4/00-own.m4': "m4_define(`m5_me', `own')m4_dnl\n",
    'layers/web/etc/x.m4.conf': 'm5_me m5_or([ENV_X], [d])\n',
  });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(readTree(root, 'm', '/etc/x.conf'), 'own m5_or([ENV_X], [d])\n');
  assert.equal(existsSync(treeFile(root, 'm', '/usr/local/include/m4/00-prelude.m4')), false);
});

test('"stdlib": false without a base layer of its own: building fails naming the missing layers/_', async () => {
  const root = makeRepo({ 'machines/m/etc/x': '', 'homecloud.json': '{"stdlib": false}' });
  const error = await buildError(root);
  assert.match(error.message, /no base layer: layers\/_ does not exist/);
  assert.equal(error.where?.file, 'homecloud.json');
  assert.match(error.hint ?? '', /create layers\/_\//);
});

test('a corrected homecloud.json is read again', async () => {
  const root = makeRepo({ 'machines/m/etc/x': '', 'homecloud.json': '{"colour": 1}' });
  await loadError(root);
  writeFiles(root, { 'homecloud.json': '{"stdlib": true}' });
  assert.equal((await buildOne(root, 'm')).status, 'built');
});
