// FORMAT.md sections 8 and 9: inventory.json and homecloud.json.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { loadModel, targetOf } from '../../src/load/model.ts';
import { buildError, loadError, buildOne, layerList, makeRepo, readTree, repoPaths, runCli, treeFile, writeFiles } from '../helpers/repo.ts';

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
  // With --json, the tool reading standard output gets the error in the one shape too.
  const json = runCli(['-C', root, '--json', 'build']);
  assert.equal(json.status, 2);
  assert.match(json.stderr, /^error: inventory\.json:4:3: invalid JSON/);
  const { error: shown } = JSON.parse(json.stdout) as { error: { file: string; line: number; column: number; message: string } };
  assert.deepEqual([shown.file, shown.line, shown.column], ['inventory.json', 4, 3]);
  assert.match(shown.message, /^invalid JSON/);
});

test('inventory.json and homecloud.json may hold comments; facts files may not (other tools read them)', async () => {
  const commented = makeRepo({
    'inventory.json': '{\n  // nuc, by its address\n  "nuc": { "host": "10.0.0.2" /* the NUC */ }\n}\n',
    'homecloud.json': '{\n  // two at once\n  "jobs": 2\n}\n',
    'machines/nuc/etc/x': 'x\n',
    'facts/nuc.json': '{\n  // no\n  "ENV_X": "1"\n}\n',
  });
  const error = await buildError(commented, 'nuc');
  assert.deepEqual(error.where, { file: 'facts/nuc.json', line: 2, column: 3 });
  assert.match(error.toString(), /JSON allows no comments/);
  writeFiles(commented, { 'facts/nuc.json': '{ "ENV_X": "1" }\n' });
  assert.equal((await buildOne(commented, 'nuc')).status, 'built');
});

test('inventory.json: duplicate keys are errors with a location', async () => {
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
  assert.deepEqual(error.where, { file: 'inventory.json', line: 3, column: 16 });
  assert.equal(error.message, 'the options of machine "nuc" must be a list of strings, not "-p 22"');
  const badName = makeRepo({ 'inventory.json': '{\n  "../evil": {}\n}\n' });
  const nameError = await loadError(badName);
  assert.deepEqual(nameError.where, { file: 'inventory.json', line: 2, column: 3 });
  assert.equal(nameError.message, '"../evil" in inventory.json is not a machine name');
});

/** The error that inventory.json or homecloud.json with this text gives: message, where, hint. */
async function documentError(file: 'inventory.json' | 'homecloud.json', text: string) {
  const error = await loadError(makeRepo({ 'machines/m/etc/x': '', [file]: text }));
  assert.equal(error.where?.file, file, text);
  return { message: error.message, at: `${error.where?.line}:${error.where?.column}`, hint: error.hint ?? '' };
}

test('inventory.json: every kind of mistake is one plain sentence naming the machine and key, at the value', async () => {
  const cases: [text: string, message: string, at: string, hint: RegExp][] = [
    ['[]', 'inventory.json must hold a JSON object of machines, not a list', '1:1', /\{"nas": \{"host": "192\.168\.1\.20"\}\}/],
    ['"nas"', 'inventory.json must hold a JSON object of machines, not "nas"', '1:1', /write \{"<machine>"/],
    [
      '{\n  "a/b": {}\n}',
      '"a/b" in inventory.json is not a machine name',
      '2:3',
      /^it holds "\/"; a machine name is a single path component: not "\." or "\.\.", without "\/", NUL or newline: rename the entry$/,
    ],
    ['{\n  "..": {}\n}', '".." in inventory.json is not a machine name', '2:3', /^it is "\.\."; .*rename the entry/],
    ['{\n  "a\\nb": {}\n}', '"a\\nb" in inventory.json is not a machine name', '2:3', /^it holds a newline; .*rename the entry/],
    ['{\n  "nas": null\n}', 'the entry of machine "nas" must be an object, not null', '2:10', /each key optional/],
    ['{\n  "nas": ["10.0.0.2"]\n}', 'the entry of machine "nas" must be an object, not a list', '2:10', /each key optional/],
    [
      '{"nas": {\n  "host": 10\n}}',
      'the host of machine "nas" must be a host name or address in quotes, not 10',
      '2:11',
      /leave "host" out to use the machine name/,
    ],
    ['{"nas": {\n  "host": ""\n}}', 'the host of machine "nas" is empty', '2:11', /leave "host" out/],
    ['{"nas": {\n  "user": true\n}}', 'the user of machine "nas" must be a user name in quotes, not true', '2:11', /leave "user" out to log in as root/],
    ['{"nas": {\n  "user": ""\n}}', 'the user of machine "nas" is empty', '2:11', /leave "user" out/],
    ['{"nas": {\n  "options": "-p 2222"\n}}', 'the options of machine "nas" must be a list of strings, not "-p 2222"', '2:14', /"options": \["-p", "2222"\]/],
    ['{"nas": {\n  "options": {"p": 2222}\n}}', 'the options of machine "nas" must be a list of strings, not an object', '2:14', /one string each/],
    ['{"nas": {\n  "options": ["-p", 2222]\n}}', 'option 2 of machine "nas" must be a string, not 2222', '2:21', /one string each/],
    ['{"nas": {\n  "port": 22\n}}', 'unknown key "port" in the entry of machine "nas"', '2:3', /^known keys: host, user, options, via$/],
  ];
  for (const [text, message, at, hint] of cases) {
    const error = await documentError('inventory.json', text);
    assert.deepEqual([error.message, error.at], [message, at], text);
    assert.match(error.hint, hint, text);
  }
});

test('inventory.json: a host or user that ssh would misread (a leading "-", white space, a control character) is an error at the value', async () => {
  const cases: [text: string, message: string, at: string][] = [
    ['{\n  "nas": {\n    "host": "-oProxyCommand=sh"\n  }\n}', 'the host of machine "nas" starts with "-": ssh would read it as an option', '3:13'],
    ['{\n  "nas": {\n    "user": "-x"\n  }\n}', 'the user of machine "nas" starts with "-": ssh would read it as an option', '3:13'],
    ['{"nas": {\n  "host": "nas.lan -p 22"\n}}', 'the host of machine "nas" holds white space', '2:11'],
    ['{"nas": {\n  "user": "ro ot"\n}}', 'the user of machine "nas" holds white space', '2:11'],
    ['{"nas": {\n  "host": "nas\\tlan"\n}}', 'the host of machine "nas" holds white space', '2:11'],
    ['{"nas": {\n  "host": "nas\\nlan"\n}}', 'the host of machine "nas" holds white space', '2:11'],
    ['{"nas": {\n  "user": "root\\u0000"\n}}', 'the user of machine "nas" holds a control character (U+0000)', '2:11'],
    ['{"nas": {\n  "host": "nas\\u001b[2J"\n}}', 'the host of machine "nas" holds a control character (U+001B)', '2:11'],
  ];
  for (const [text, message, at] of cases) {
    const error = await documentError('inventory.json', text);
    assert.deepEqual([error.message, error.at], [message, at], text);
    assert.match(error.hint, /ssh arguments go in "options"/, text);
  }
  // Options are ssh's own arguments: a leading "-" is what they are for.
  const root = makeRepo({ 'inventory.json': '{"nas": {"host": "nas.lan", "user": "admin", "options": ["-p", "2222", "-o", "ProxyJump=bastion"]}}' });
  assert.deepEqual((await loadModel(repoPaths(root))).inventory.nas, { host: 'nas.lan', user: 'admin', options: ['-p', '2222', '-o', 'ProxyJump=bastion'] });
});

test('homecloud.json: every kind of mistake is one plain sentence naming the setting, at the value', async () => {
  const cases: [text: string, message: string, at: string, hint: RegExp][] = [
    ['[]', 'homecloud.json must hold a JSON object of settings, not a list', '1:1', /e\.g\. \{"stdlib": true\}/],
    ['true', 'homecloud.json must hold a JSON object of settings, not true', '1:1', /\{\} for the defaults/],
    ['{\n  "stdlib": 0\n}', 'the setting "stdlib" must be true or false, not 0', '2:13', /standard layers/],
    ['{\n  "jobs": "4"\n}', 'the setting "jobs" must be a whole number from 1 to 1024, not "4"', '2:11', /machines are worked on at once/],
    ['{\n  "jobs": 2.5\n}', 'the setting "jobs" must be a whole number from 1 to 1024, not 2.5', '2:11', /default 16/],
    ['{\n  "jobs": 0\n}', 'the setting "jobs" must be a whole number from 1 to 1024, not 0', '2:11', /default 16/],
    ['{\n  "jobs": 5000\n}', 'the setting "jobs" must be a whole number from 1 to 1024, not 5000', '2:11', /default 16/],
    ['{\n  "jobs": 1e400\n}', 'the setting "jobs" must be a whole number from 1 to 1024, not 1e400', '2:11', /default 16/],
    ['{\n  "generations": null\n}', 'the setting "generations" must be a whole number from 1 to 1000, not null', '2:18', /rollback \(default 5\)/],
    ['{\n  "generations": 1001\n}', 'the setting "generations" must be a whole number from 1 to 1000, not 1001', '2:18', /rollback/],
    ['{\n  "colour": "blue"\n}', 'unknown setting "colour"', '2:3', /^known keys: stdlib, jobs, generations, readOutside$/],
  ];
  for (const [text, message, at, hint] of cases) {
    const error = await documentError('homecloud.json', text);
    assert.deepEqual([error.message, error.at], [message, at], text);
    assert.match(error.hint, hint, text);
  }
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
  assert.deepEqual(error.where, { file: 'homecloud.json', line: 2, column: 13 });
  assert.equal(error.message, 'the setting "stdlib" must be true or false, not "no"');
});

test('homecloud.json: all settings are optional; known ones are accepted', async () => {
  for (const text of ['{}', '{"stdlib": true, "jobs": 4, "generations": 3}']) {
    const root = makeRepo({ 'machines/m/etc/x': 'x\n', 'homecloud.json': text });
    assert.equal((await buildOne(root, 'm')).status, 'built', text);
  }
  const root = makeRepo({ 'machines/m/etc/x': '', 'homecloud.json': '{"jobs": 2, "generations": 7}' });
  assert.deepEqual((await loadModel(repoPaths(root))).settings, { stdlib: true, jobs: 2, generations: 7, readOutside: [] });
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

test('inventory: "via" names the machine ssh goes through; it must be listed, and a chain of them must end', async () => {
  const root = makeRepo({
    'inventory.json': '{"bastion": {"host": "203.0.113.5"}, "nas": {"host": "10.0.0.2", "via": "bastion"}, "db": {"host": "10.0.1.3", "via": "nas"}}',
  });
  const model = await loadModel(repoPaths(root));
  assert.deepEqual(model.inventory.nas, { host: '10.0.0.2', user: 'root', options: [], via: 'bastion' });
  const target = targetOf(model, 'db');
  assert.deepEqual([target.machine, target.via?.machine, target.via?.via?.machine, target.via?.via?.via], ['db', 'nas', 'bastion', undefined]);
  assert.equal(target.via?.via?.entry.host, '203.0.113.5');

  const unknown = makeRepo({ 'inventory.json': '{"nas": {\n  "via": "gone"\n}}' });
  const missing = await loadError(unknown);
  assert.match(missing.message, /machine "nas" goes via "gone", which inventory.json does not list/);
  assert.deepEqual(missing.where, { file: 'inventory.json', line: 2, column: 10 });

  const loop = makeRepo({ 'inventory.json': '{"a": {"via": "b"}, "b": {"via": "a"}}' });
  assert.match((await loadError(loop)).message, /machine "a" goes via "b" via "a": a loop/);
  const wrong = makeRepo({ 'inventory.json': '{"a": {"via": 3}}' });
  assert.match((await loadError(wrong)).toString(), /the via of machine "a" must be the name of another machine in quotes/);
});
