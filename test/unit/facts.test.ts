// FORMAT.md section 6: facts and their precedence.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Builder } from '../../src/build/builder.ts';
import { parseEnvFacts } from '../../src/facts/facts.ts';
import { buildError, buildOne, layerList, makeRepo, manifestOf, preludeOnlyBase, readTree, repoPaths, writeFiles, type FixtureFile } from '../helpers/repo.ts';

/** The facts of machine m, by key. */
async function factsOf(root: string, machine = 'm') {
  const { facts } = await new Builder(repoPaths(root)).layout(machine);
  return facts;
}

async function valuesOf(root: string, machine = 'm'): Promise<Record<string, string>> {
  return Object.fromEntries([...(await factsOf(root, machine))].map(([key, fact]) => [key, fact.value]));
}

/** A probe record as `homecloud facts` stores it, for the default inventory entry of `machine`. */
function probeCache(machine: string, facts: Record<string, string>, inventory = { host: machine, user: 'root', options: [] as string[] }): FixtureFile {
  return JSON.stringify({ inventory, probedAt: '2024-01-01T00:00:00Z', facts });
}

test('ENV_MACHINE is the machine name', async () => {
  const root = makeRepo({ 'machines/web1/etc/x': '' });
  const facts = await factsOf(root, 'web1');
  assert.equal(facts.get('ENV_MACHINE')?.value, 'web1');
  assert.equal(facts.get('ENV_MACHINE')?.origin, 'machine');
});

test('precedence: machine name < layer defaults < facts json < facts env < probe cache', async () => {
  const root = makeRepo({
    ...layerList('a'),
    'layers/a/usr/local/doc/examples/a.env': 'ENV_MACHINE=from-defaults\nENV_D=defaults\nENV_J=defaults\nENV_E=defaults\nENV_HOSTNAME=defaults\n',
    'facts/m.json': '{"ENV_J": "json", "ENV_E": "json", "ENV_HOSTNAME": "json"}',
    'facts/m.env': 'ENV_E=env\nENV_HOSTNAME=env\n',
    'var/facts/m.json': probeCache('m', { ENV_HOSTNAME: 'probe' }),
    'layers/a/etc/t.m4.conf': 'ENV_MACHINE ENV_D ENV_J ENV_E ENV_HOSTNAME\n',
  });
  const facts = await factsOf(root);
  assert.deepEqual(
    Object.fromEntries(['ENV_MACHINE', 'ENV_D', 'ENV_J', 'ENV_E', 'ENV_HOSTNAME'].map((key) => [key, [facts.get(key)!.value, facts.get(key)!.origin]])),
    {
      ENV_MACHINE: ['from-defaults', 'default'],
      ENV_D: ['defaults', 'default'],
      ENV_J: ['json', 'json'],
      ENV_E: ['env', 'env'],
      ENV_HOSTNAME: ['probe', 'probe'],
    },
  );
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(readTree(root, 'm', '/etc/t.conf'), 'from-defaults defaults json env probe\n');
});

test('defaults: every usr/local/doc/examples/*.env of every selected layer and of the machine, the machine last', async () => {
  const root = makeRepo({
    ...layerList('a', 'b'),
    'layers/_/usr/local/doc/examples/base.env': 'ENV_BASE=base\nENV_ALL=base\n',
    'layers/a/usr/local/doc/examples/a.env': 'ENV_A=a\nENV_ALL=a\n',
    'layers/b/usr/local/doc/examples/b.env': 'ENV_B=b\nENV_ALL=b\n',
    'machines/m/usr/local/doc/examples/m.env': 'ENV_ALL=machine\n',
    'layers/unselected/usr/local/doc/examples/u.env': 'ENV_UNSELECTED=u\n',
    'layers/a/usr/local/doc/examples/notes.txt': 'ENV_TXT=txt\n',
    'layers/a/usr/local/doc/examples/sub/deep.env': 'ENV_DEEP=deep\n',
    'layers/a/usr/local/doc/other.env': 'ENV_OTHER=other\n',
  });
  const values = await valuesOf(root);
  assert.deepEqual(values, { ENV_MACHINE: 'm', ENV_BASE: 'base', ENV_A: 'a', ENV_B: 'b', ENV_ALL: 'machine' });
});

test('defaults of one layer are read in file name order', async () => {
  const root = makeRepo({
    ...layerList('a'),
    'layers/a/usr/local/doc/examples/20.env': 'ENV_X=second\n',
    'layers/a/usr/local/doc/examples/10.env': 'ENV_X=first\n',
  });
  assert.equal((await valuesOf(root)).ENV_X, 'second');
});

test('facts json: strings as is, numbers and booleans as text, arrays joined with ",", objects compact, null as null', async () => {
  const root = makeRepo({
    ...preludeOnlyBase,
    'machines/m/etc/x': '',
    'facts/m.json': JSON.stringify(
      {
        ENV_STR: 'two words',
        ENV_INT: 8,
        ENV_FLOAT: 1.5,
        ENV_TRUE: true,
        ENV_FALSE: false,
        ENV_LIST: ['a', 'b', 3, true],
        ENV_EMPTY_LIST: [],
        ENV_OBJECT: { a: 1, b: [1, 2], c: 'x' },
        ENV_NULL: null,
        ENV_EMPTY: '',
      },
      null,
      2,
    ),
  });
  const values = await valuesOf(root);
  assert.deepEqual(values, {
    ENV_MACHINE: 'm',
    ENV_STR: 'two words',
    ENV_INT: '8',
    ENV_FLOAT: '1.5',
    ENV_TRUE: 'true',
    ENV_FALSE: 'false',
    ENV_LIST: 'a,b,3,true',
    ENV_EMPTY_LIST: '',
    ENV_OBJECT: '{"a":1,"b":[1,2],"c":"x"}',
    ENV_NULL: 'null',
    ENV_EMPTY: '',
  });
});

test('facts json: each fact remembers its file and line', async () => {
  const root = makeRepo({ 'machines/m/etc/x': '', 'facts/m.json': '{\n  "ENV_A": 1,\n\n  "ENV_B": 2\n}\n' });
  const facts = await factsOf(root);
  assert.deepEqual([facts.get('ENV_B')!.file, facts.get('ENV_B')!.line], ['facts/m.json', 4]);
});

test('facts env: KEY=VALUE lines, # comments, no shell quoting, one surrounding pair of single quotes removed', () => {
  const text = [
    '# a comment',
    '',
    'ENV_PLAIN=value',
    "ENV_QUOTED='two words'",
    'ENV_DOUBLE="kept"',
    "ENV_INNER=a 'b' c",
    "ENV_TWICE=''x''",
    "ENV_HALF='open",
    "ENV_EMPTY_QUOTES=''",
    'ENV_EMPTY=',
    'ENV_EQUALS=a=b=c',
    'ENV_DOLLAR=$HOME ${X} `id`',
    'ENV_SPACES=  padded  ',
    'ENV_HASH=#not a comment',
    'ENV_CRLF=x\r',
    '',
  ].join('\n');
  const facts = Object.fromEntries(parseEnvFacts(text, 'facts/m.env', 'env').map((fact) => [fact.key, fact.value]));
  assert.deepEqual(facts, {
    ENV_PLAIN: 'value',
    ENV_QUOTED: 'two words',
    ENV_DOUBLE: '"kept"',
    ENV_INNER: "a 'b' c",
    ENV_TWICE: "'x'",
    ENV_HALF: "'open",
    ENV_EMPTY_QUOTES: '',
    ENV_EMPTY: '',
    ENV_EQUALS: 'a=b=c',
    ENV_DOLLAR: '$HOME ${X} `id`',
    ENV_SPACES: '  padded  ',
    ENV_HASH: '#not a comment',
    ENV_CRLF: 'x',
  });
});

test('facts env values are secrets; the others are not', async () => {
  const root = makeRepo({ 'machines/m/etc/x': '', 'facts/m.env': 'ENV_PASSWORD=hunter2\n', 'facts/m.json': '{"ENV_USER": "u"}' });
  const facts = await factsOf(root);
  assert.equal(facts.get('ENV_PASSWORD')!.secret, true);
  assert.equal(facts.get('ENV_USER')!.secret, false);
  assert.equal(facts.get('ENV_MACHINE')!.secret, false);
  // A rendered output holding a secret value is marked in the manifest; one without is not.
  writeFiles(root, { 'machines/m/etc/with.m4.conf': 'password=ENV_PASSWORD\n', 'machines/m/etc/without.m4.conf': 'user=ENV_USER\n' });
  assert.equal((await buildOne(root, 'm')).status, 'built');
  const entries = manifestOf(root, 'm').entries as Record<string, { secret?: boolean }>;
  assert.equal(entries['/etc/with.conf']!.secret, true);
  assert.equal(entries['/etc/without.conf']!.secret, undefined);
});

test('facts env: a line that is not KEY=VALUE, or a bad key, is an error naming the file and line', async () => {
  for (const line of ['just words', 'export ENV_X=1', '1ENV=x', 'ENV-X=1']) {
    const root = makeRepo({ 'machines/m/etc/x': '', 'facts/m.env': `# ok\nENV_OK=1\n${line}\n` });
    const error = await buildError(root);
    assert.deepEqual(error.where, { file: 'facts/m.env', line: 3 }, line);
  }
});

test('missing facts/<m>.json and facts/<m>.env are fine (improvement)', async () => {
  const root = makeRepo({ ...preludeOnlyBase, 'machines/m/etc/x.m4.conf': 'ENV_MACHINE\n' });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.deepEqual(await valuesOf(root), { ENV_MACHINE: 'm' });
});

test('a fact value with a newline is an error naming the file and key', async () => {
  for (const value of ['"line one\\nline two"', '["a", "b\\nc"]']) {
    const root = makeRepo({ 'machines/m/etc/x': '', 'facts/m.json': `{\n  "ENV_OK": "fine",\n  "ENV_MULTI": ${value}\n}\n` });
    const error = await buildError(root);
    assert.equal(error.where?.file, 'facts/m.json');
    assert.equal(error.where?.line, 3);
    assert.match(error.message, /ENV_MULTI/);
    assert.match(error.message, /newline/);
  }
});

test('malformed facts/<m>.json is an error naming file, line and column', async () => {
  const root = makeRepo({ 'machines/m/etc/x': '', 'facts/m.json': '{\n  "ENV_A": "x",\n  "ENV_B" "y"\n}\n' });
  const error = await buildError(root);
  assert.deepEqual(error.where, { file: 'facts/m.json', line: 3, column: 11 });
  assert.match(error.toString(), /^facts\/m\.json:3:11: invalid JSON/);
});

test('facts/<m>.json must be an object; a bad key is an error naming the file', async () => {
  const array = makeRepo({ 'machines/m/etc/x': '', 'facts/m.json': '["ENV_A"]\n' });
  assert.equal((await buildError(array)).where?.file, 'facts/m.json');
  const badKey = makeRepo({ 'machines/m/etc/x': '', 'facts/m.json': '{\n  "not a key": 1\n}\n' });
  assert.deepEqual((await buildError(badKey)).where, { file: 'facts/m.json', line: 2, column: 3 });
});

test('probe facts come from var/facts/<m>.json and are ignored when the inventory entry changed', async () => {
  const root = makeRepo({
    ...preludeOnlyBase,
    'machines/m/etc/x': '',
    'facts/m.env': 'ENV_NPROC=2\n',
    'var/facts/m.json': probeCache('m', { ENV_NPROC: '4', ENV_HOSTNAME: 'box' }),
  });
  assert.deepEqual(await valuesOf(root), { ENV_MACHINE: 'm', ENV_NPROC: '4', ENV_HOSTNAME: 'box' });
  writeFiles(root, { 'inventory.json': '{"m": {"host": "10.0.0.9"}}' });
  assert.deepEqual(await valuesOf(root), { ENV_MACHINE: 'm', ENV_NPROC: '2' });
  writeFiles(root, { 'var/facts/m.json': probeCache('m', { ENV_NPROC: '8' }, { host: '10.0.0.9', user: 'root', options: [] }) });
  assert.equal((await valuesOf(root)).ENV_NPROC, '8');
});

test('a template needing a probe fact that is not cached fails saying to run `homecloud facts <m>`', async () => {
  const root = makeRepo({ ...layerList('a'), 'layers/a/etc/t.m4.conf': 'workers\nn=m5_assert([ENV_NPROC])\n' });
  const error = await buildError(root);
  assert.deepEqual(error.where, { file: 'layers/a/etc/t.m4.conf', line: 2 });
  assert.match(error.message, /ENV_NPROC/);
  assert.match(error.toString(), /homecloud facts m\b/);
});

test('a missing fact that no probe provides does not mention the probe', async () => {
  const root = makeRepo({ ...layerList('a'), 'layers/a/etc/t.m4.conf': 'n=m5_assert([ENV_WORKERS])\n' });
  const error = await buildError(root);
  assert.match(error.message, /ENV_WORKERS/);
  assert.doesNotMatch(error.toString(), /homecloud facts/);
});

test('a fact change is picked up by the next build', async () => {
  const root = makeRepo({ ...layerList('a'), 'layers/a/etc/t.m4.conf': 'workers=m5_assert([ENV_NPROC])\n', 'facts/m.json': '{"ENV_NPROC": 80}' });
  await buildOne(root, 'm');
  assert.equal(readTree(root, 'm', '/etc/t.conf'), 'workers=80\n');
  writeFiles(root, { 'facts/m.json': '{"ENV_NPROC": 8080}' });
  assert.equal((await buildOne(root, 'm')).status, 'built');
  assert.equal(readTree(root, 'm', '/etc/t.conf'), 'workers=8080\n');
  writeFiles(root, { 'facts/m.env': 'ENV_NPROC=443\n' });
  await buildOne(root, 'm');
  assert.equal(readTree(root, 'm', '/etc/t.conf'), 'workers=443\n');
  writeFiles(root, { 'var/facts/m.json': probeCache('m', { ENV_NPROC: '1' }) });
  await buildOne(root, 'm');
  assert.equal(readTree(root, 'm', '/etc/t.conf'), 'workers=1\n');
});
