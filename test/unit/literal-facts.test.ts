// FORMAT.md sections 5 and 6: secret and probe facts are data, never m4 code; secrets never leak.
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { after, test } from 'node:test';
import { renderTemplate } from '../../src/build/render.ts';
import type { Fact, FactOrigin, Facts } from '../../src/facts/facts.ts';
import { checkProbeFacts } from '../../src/facts/probe-values.ts';
import { HomecloudError } from '../../src/load/errors.ts';
import {
  buildError,
  buildOne,
  layerList,
  makeRepo,
  manifestOf,
  modeOf,
  preludeOnlyBase,
  readTree,
  runCli,
  treeFile,
  type FixtureFile,
} from '../helpers/repo.ts';

const template = 'layers/a/etc/t.m4.conf';
const prelude = 'layers/_/usr/local/include/m4/00-prelude.m4';

/** A probe record as `homecloud facts` stores it, for the default inventory entry of `machine`. */
function probeCache(machine: string, facts: Record<string, string>): FixtureFile {
  return JSON.stringify({ inventory: { host: machine, user: 'root', options: [] }, probedAt: '2024-01-01T00:00:00Z', facts });
}

/** Values that m4 would read as code, quoting or arguments if they were m4 text. */
const hostile = [
  '[',
  ']',
  'a[b',
  'a]b',
  '[unbalanced',
  'unbalanced]]',
  '[[x]]',
  '$1',
  'x$1y',
  '$#',
  '$0',
  '$@',
  '$*',
  '$$2',
  'm4_dnl',
  'm4_changequote',
  'm4_changequote(<,>)',
  'm4_m4exit',
  'm4_m4exit(3)',
  'm4_dnl tail',
  'ENV_OTHER',
  'm5_or',
  'm5_assert([ENV_OTHER])',
  'a,b,c',
  ',',
  'f(x',
  ')',
  '(a, b)',
  "it's `quoted'",
  '#not a comment',
  '1m4_dnl',
  '  padded  ',
  '$2y$10$abc',
  'Sup3r$1Secret',
];

/** Each way a template uses a fact: directly, through m5_assert, m5_or, and as an item of m5_join, m5_for and m5_argn. */
function usages(key: string): string {
  return [
    `direct=<${key}>`,
    `assert=<m5_assert([${key}])>`,
    `or=<m5_or([${key}], [dflt])>`,
    `join=<m5_join([|], a, ${key}, b)>`,
    `for=<m5_for([I], [{I}], ${key})>`,
    `argn=<m5_argn(2, a, ${key}, b)>`,
    // The item inside an argument list: commas and parentheses must not split or swallow it.
    `nested=<m4_ifelse([x], [x], m5_for([I], [{I}], ${key}))>`,
    '',
  ].join('\n');
}

function expected(value: string): string {
  return [
    `direct=<${value}>`,
    `assert=<${value}>`,
    `or=<${value}>`,
    `join=<a|${value}|b>`,
    `for=<{${value}}>`,
    `argn=<${value}>`,
    `nested=<{${value}}>`,
    '',
  ].join('\n');
}

function fact(key: string, value: string, origin: FactOrigin): Fact {
  return { key, value, origin, file: origin === 'env' ? 'facts/m.env' : 'var/facts/m.json', secret: origin === 'env' };
}

/** Render a template with renderTemplate itself and the given facts (the probe check comes before it, so any probe value is possible here). */
async function renderDirect(text: string, facts: Fact[]): Promise<string> {
  const root = makeRepo({ ...preludeOnlyBase, [template]: text });
  const map: Facts = new Map([['ENV_MACHINE', fact('ENV_MACHINE', 'm', 'machine')], ...facts.map((f) => [f.key, f] as const)]);
  const output = await renderTemplate({ cwd: root, preludes: [prelude], template, facts: map });
  return output.toString('utf8');
}

async function renderDirectError(text: string, facts: Fact[]): Promise<HomecloudError> {
  try {
    await renderDirect(text, facts);
  } catch (error) {
    assert.ok(error instanceof HomecloudError, String(error));
    return error;
  }
  assert.fail('the render should fail');
}

for (const origin of ['env', 'probe'] as const) {
  test(`${origin} facts render literally in every usage form, whatever they hold`, async () => {
    for (const value of hostile) {
      const output = await renderDirect(usages('ENV_X'), [fact('ENV_OTHER', 'other', 'json'), fact('ENV_X', value, origin)]);
      assert.equal(output, expected(value), JSON.stringify(value));
    }
  });
}

test('secret facts from facts/<m>.env render literally in a build, in every usage form', async () => {
  const keys = hostile.map((_, i) => `ENV_V${i}`);
  const root = makeRepo({
    ...layerList('a'),
    [template]: keys.map(usages).join(''),
    'facts/m.json': '{"ENV_OTHER": "other"}',
    'facts/m.env': hostile.map((value, i) => `${keys[i]}=${value}\n`).join(''),
  });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(readTree(root, 'm', '/etc/t.conf'), hostile.map(expected).join(''));
});

test('probe facts from var/facts/<m>.json render literally in a build: macro and fact names among what the probe check lets through', async () => {
  const probed = {
    ENV_ID: 'm4_dnl',
    ENV_VERSION_CODENAME: 'm4_changequote',
    ENV_HOSTTYPE: 'm4_m4exit',
    ENV_ARCH: 'm5_or',
    ENV_VERSION_ID: 'ENV_OTHER',
    ENV_OSTYPE: 'm4_syscmd',
  };
  const root = makeRepo({
    ...layerList('a'),
    [template]: Object.keys(probed).map(usages).join(''),
    'facts/m.json': '{"ENV_OTHER": "other"}',
    'var/facts/m.json': probeCache('m', probed),
  });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(readTree(root, 'm', '/etc/t.conf'), Object.values(probed).map(expected).join(''));
});

test('a probe value that would run a command renders literally and runs nothing', async () => {
  const marker = `/tmp/homecloud-literal-${process.pid}-${Date.now()}`;
  after(() => rmSync(marker, { force: true }));
  const value = `bookworm m4_syscmd(touch ${marker})m4_esyscmd(touch ${marker})`;
  const output = await renderDirect('codename=ENV_VERSION_CODENAME\nfor=m5_for([I], [I], ENV_VERSION_CODENAME)\n', [
    fact('ENV_VERSION_CODENAME', value, 'probe'),
  ]);
  assert.equal(output, `codename=${value}\nfor=${value}\n`);
  assert.equal(existsSync(marker), false);
});

test('facts written in the repository stay m4 text: they expand other facts and macros, and a list splits into items', async () => {
  const root = makeRepo({
    ...layerList('a'),
    [template]:
      'mail=ENV_MAIL\nlist=m5_for([I], [<I>], ENV_LIST)\nsecret list=m5_for([I], [<I>], ENV_SECRET_LIST)\nurl=ENV_URL\ndefault=ENV_GREETING\ncount=ENV_COUNT\n',
    'layers/a/usr/local/doc/examples/a.env': 'ENV_GREETING=hello m4_translit(ENV_MACHINE, [a-z], [A-Z])\n',
    'facts/m.json':
      '{"ENV_DOMAIN": "example.org", "ENV_MAIL": "me@ENV_DOMAIN", "ENV_LIST": ["a", "b", "c"], "ENV_URL": "https://u:ENV_PASS@h/", "ENV_COUNT": "m4_eval(2 * 3)"}',
    'facts/m.env': 'ENV_SECRET_LIST=a,b,c\nENV_PASS=pa$$,w(rd\n',
  });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(
    readTree(root, 'm', '/etc/t.conf'),
    'mail=me@example.org\nlist=<a><b><c>\nsecret list=<a,b,c>\nurl=https://u:pa$$,w(rd@h/\ndefault=hello M\ncount=6\n',
  );
  // The secret came in through a repository fact: the output is still found to hold it.
  const entry = manifestOf(root, 'm').entries['/etc/t.conf'] as { secret?: boolean; mode: string };
  assert.deepEqual([entry.secret, entry.mode], [true, '0600']);
});

test('comparisons work on ordinary probe and secret values', async () => {
  const root = makeRepo({
    ...layerList('a'),
    [template]: [
      'id=m4_ifelse(ENV_ID, [debian], yes, no)',
      'arch=m4_ifelse(ENV_HOSTTYPE, [x86_64], amd, other)',
      'secret=m5_or([ENV_SECRET], [none])',
      'pin=m5_clamp(1, ENV_PIN, 5)',
      'cpus=m5_clamp(1, ENV_NPROC, 8)',
      'mem=m4_eval(ENV_MEMBYTES / 1024)',
      'home=m4_ifelse(ENV_HOME, [/root], root, other)',
      '',
    ].join('\n'),
    'facts/m.env': 'ENV_SECRET=\nENV_PIN=3\n',
    'var/facts/m.json': probeCache('m', { ENV_ID: 'debian', ENV_HOSTTYPE: 'x86_64', ENV_NPROC: '16', ENV_MEMBYTES: '1048576', ENV_HOME: '/root' }),
  });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(readTree(root, 'm', '/etc/t.conf'), 'id=yes\narch=amd\nsecret=none\npin=3\ncpus=8\nmem=1024\nhome=root\n');
});

test('a cached probe value that could run a command is refused, naming the machine and the fact; nothing runs', async () => {
  const marker = `/tmp/homecloud-probe-${process.pid}-${Date.now()}`;
  after(() => rmSync(marker, { force: true }));
  const value = `bookworm m4_syscmd(touch ${marker})`;
  const root = makeRepo({
    'machines/nas/usr/local/opt/initd/layers/10.txt': '+ a\n',
    [template]: 'codename=ENV_VERSION_CODENAME\n',
    'var/facts/nas.json': probeCache('nas', { ENV_ID: 'debian', ENV_VERSION_CODENAME: value }),
  });
  const error = await buildError(root, 'nas');
  assert.equal(error.where?.file, 'nas');
  assert.equal(
    error.message,
    `the probed fact ENV_VERSION_CODENAME (${JSON.stringify(value)}) is not an os-release identifier (lower-case letters, digits, ".", "_" and "-")`,
  );
  assert.match(error.toString(), /^nas: the probed fact ENV_VERSION_CODENAME \("bookworm m4_syscmd\(touch /);
  assert.match(error.hint ?? '', /homecloud facts --refresh nas/);
  assert.equal(existsSync(marker), false);
  assert.equal(existsSync(treeFile(root, 'nas', '/etc/t.conf')), false);
});

test('each probe fact accepts what a real machine reports and refuses anything else', () => {
  const cases: Record<string, { good: string[]; bad: string[] }> = {
    ENV_HOSTNAME: { good: ['nas-1.home', 'box', 'a'.repeat(253)], bad: ['', 'nas_1', 'nas 1', 'a'.repeat(254), 'x;id'] },
    ENV_HOSTTYPE: { good: ['x86_64', 'aarch64'], bad: ['', 'x86 64', 'x86.64', '$(id)'] },
    ENV_ARCH: { good: ['amd64', 'arm64', 'x86_64'], bad: ['', 'amd64;id', 'arm/64'] },
    ENV_OSTYPE: { good: ['linux-gnu', 'linux-gnueabihf', 'darwin23.0'], bad: ['', 'linux gnu', 'linux/gnu'] },
    ENV_ID: { good: ['debian', 'opensuse-leap', ''], bad: ['Debian', 'debian,ubuntu', 'deb ian'] },
    ENV_VERSION_CODENAME: { good: ['bookworm', ''], bad: ['bookworm m4_syscmd(touch /tmp/x)', 'Bookworm', 'book[worm'] },
    ENV_VERSION_ID: { good: ['12', '22.04', '1.0~rc1', 'Rolling_2', ''], bad: ['12 ', '$(id)', '12,13'] },
    ENV_NPROC: { good: ['4', '128'], bad: ['', '4.0', '-1', '1.67772e+10'] },
    ENV_MEMBYTES: { good: ['8589934592'], bad: ['', '1.67772e+10', '8 GiB'] },
    ENV_SYSTEMD_VERSION: { good: ['252'], bad: ['', '252 (252.22-1~deb12u1)'] },
    ENV_HOME: { good: ['/root', '/home/ops', '/'], bad: ['', 'root', '/home/o ps', '/$HOME', '/home/`id`'] },
    ENV_KERNEL: { good: ['6.1.0-18-amd64', '6.6.31+rpt-rpi-v8', '5.15.0~rc1'], bad: ['', '6.1.0 #1 SMP', '6.1$(id)'] },
    ENV_WIREGUARD_KERNEL: { good: ['yes', 'no'], bad: ['', 'Yes', 'true', '1', 'yes ', 'yes\nno', 'no;id'] },
    ENV_NAMESERVERS: {
      good: [
        '',
        '1.1.1.1',
        '192.168.1.1 9.9.9.9',
        '2001:db8::53',
        '::1 127.0.0.1',
        'fe80::1%eth0 10.0.0.1',
        '::ffff:10.0.0.1',
        Array(8).fill('10.0.0.1').join(' '),
      ],
      bad: [
        ' ',
        '1.1.1.1 ',
        ' 1.1.1.1',
        '1.1.1.1  9.9.9.9',
        '1.1.1.1,9.9.9.9',
        '1.1.1.1\t9.9.9.9',
        '256.1.1.1',
        '01.1.1.1',
        '1.1.1',
        'dns.example',
        'localhost',
        '1.1.1.1/32',
        '[::1]',
        '1.1.1.1%eth0',
        'fe80::1%',
        'fe80::1%eth0;id',
        '$(id)',
        '1.1.1.1 m4_syscmd(id)',
        Array(9).fill('10.0.0.1').join(' '),
      ],
    },
  };
  for (const [key, { good, bad }] of Object.entries(cases)) {
    for (const value of good) assert.doesNotThrow(() => checkProbeFacts('nas', { [key]: value }), `${key}=${JSON.stringify(value)}`);
    for (const value of bad) {
      assert.throws(
        () => checkProbeFacts('nas', { ENV_ID: 'debian', [key]: value }),
        (error: unknown) =>
          error instanceof HomecloudError &&
          error.where?.file === 'nas' &&
          error.message.startsWith(`the probed fact ${key} (${JSON.stringify(value)}) is not `) &&
          error.hint !== undefined,
        `${key}=${JSON.stringify(value)}`,
      );
    }
  }
  for (const key of ['ENV_PORT', 'HC_SYSTEMD', 'ENV_HOSTNAME2']) {
    assert.throws(
      () => checkProbeFacts('nas', { [key]: '1' }),
      (error: unknown) => error instanceof HomecloudError && error.where?.file === 'nas' && error.message.includes(key),
      key,
    );
  }
});

test('a refused probe value is shown with its control characters escaped', () => {
  const value = 'box\u001b[2J\nx';
  assert.throws(
    () => checkProbeFacts('nas', { ENV_HOSTNAME: value }),
    (error: unknown) => error instanceof HomecloudError && error.message.includes(JSON.stringify(value)) && !/[\u0000-\u001f]/.test(error.message),
  );
});

test('names the template or a prelude defines, and other quotes and comments of an own prelude, are respected too', async () => {
  const defined = await renderDirect('m4_define([debian], [EXPANDED])id=ENV_ID for=m5_for([I], [<I>], ENV_ID)\n', [fact('ENV_ID', 'debian', 'probe')]);
  assert.equal(defined, 'id=debian for=<debian>\n');
  // An own prelude that keeps m4's default quotes ` ' and comments #.
  const root = makeRepo({
    ...layerList('a'),
    'layers/_/usr/local/include/m4/00-own.m4': "m4_define(`m5_v', `v')m4_dnl\n",
    [template]: 'x=ENV_X m5_v\n',
    'facts/m.env': "ENV_X=it's `q' #c [b\n",
  });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(readTree(root, 'm', '/etc/t.conf'), "x=it's `q' #c [b v\n");
});

test('secrets with $ render exactly, and the output is secret: root-only mode', async () => {
  const root = makeRepo({
    ...layerList('a'),
    [template]: 'hash=ENV_HASH\npassword=m5_assert([ENV_PASSWORD])\n',
    'layers/a/etc/plain.m4.conf': 'nothing secret ENV_MACHINE\n',
    'facts/m.env': 'ENV_HASH=$2y$10$abc\nENV_PASSWORD=Sup3r$1Secret\n',
  });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(readTree(root, 'm', '/etc/t.conf'), 'hash=$2y$10$abc\npassword=Sup3r$1Secret\n');
  const entries = manifestOf(root, 'm').entries as Record<string, { secret?: boolean; mode: string }>;
  assert.deepEqual([entries['/etc/t.conf']!.secret, entries['/etc/t.conf']!.mode], [true, '0600']);
  assert.equal(entries['/etc/plain.conf']!.secret, undefined);
  assert.equal(modeOf(treeFile(root, 'm', '/etc/t.conf')) & 0o077, 0);
});

test("a secret fact holding homecloud's placeholder characters is refused, naming the fact and file but not the value", async () => {
  const root = makeRepo({ ...layerList('a'), [template]: 'x=ENV_TOKEN\n', 'facts/m.env': '# t\nENV_TOKEN=ab\uFDD00\uFDD1cd\n' });
  const error = await buildError(root);
  assert.deepEqual(error.where, { file: 'facts/m.env', line: 2 });
  assert.match(error.message, /ENV_TOKEN/);
  assert.doesNotMatch(error.toString(), /ab|cd/);
});

/** The pieces of a secret that no output may show: the value, and its comma- or space-separated parts of 2 characters or more. */
function pieces(secret: string): string[] {
  return [secret, ...secret.split(/[\s,]+/).filter((piece) => piece.length >= 2)];
}

function assertHidden(text: string, secret: string, where: string): void {
  for (const piece of pieces(secret)) assert.equal(text.includes(piece), false, `${where} shows ${JSON.stringify(piece)} of the secret: ${text}`);
}

for (const secret of ['12,ab', 'x y', 'hunter2-long', 'q$1z,(w9']) {
  test(`an m4 error caused by a secret names the fact and shows no piece of it: ${JSON.stringify(secret)}`, async () => {
    const root = makeRepo({ ...layerList('a'), [template]: 'one\npin=m5_clamp(1, ENV_PIN, 5)\n', 'facts/m.env': `ENV_PIN=${secret}\n` });
    const error = await buildError(root);
    assert.deepEqual(error.where, { file: template, line: 2 });
    assert.match(error.message, /ENV_PIN/);
    assertHidden(error.toString(), secret, 'the error');
  });
}

test('the failure message of m5_esyscmd names a secret in its command instead of showing it', async () => {
  for (const secret of ['hunter2-long', 'pa$$,w0rd x(y']) {
    const root = makeRepo({ ...layerList('a'), [template]: "v=m5_esyscmd([exit 3; echo ']ENV_TOKEN['])\n", 'facts/m.env': `ENV_TOKEN=${secret}\n` });
    const error = await buildError(root);
    assert.match(error.message, /exit status 3: exit 3; echo '<secret ENV_TOKEN>'/);
    assertHidden(error.toString(), secret, 'the error');
  }
});

test('an error that quotes a probe value shows the value', async () => {
  const error = await renderDirectError('x=m4_eval(ENV_ID)\n', [fact('ENV_ID', 'm5_or', 'probe')]);
  assert.match(error.message, /m5_or/);
  assert.doesNotMatch(error.message, /[\uFDD0-\uFDEF]/);
});

test('homecloud build and --json build show no piece of a secret in a failing render (run `npm run build` first)', () => {
  const secret = 'zq7,wx9 kv3';
  const root = makeRepo({
    ...layerList('a'),
    [template]: 'one\npin=m5_clamp(1, ENV_PIN, 5)\n',
    'layers/a/etc/cmd.m4.conf': 'm5_esyscmd([exit 4; ]ENV_PIN)\n',
    'facts/m.env': `ENV_PIN=${secret}\n`,
  });
  for (const args of [['build'], ['--json', 'build']]) {
    const run = runCli(['-C', root, ...args]);
    assert.equal(run.status, 1, run.stdout + run.stderr);
    assert.match(run.stdout + run.stderr, /ENV_PIN/, args.join(' '));
    assertHidden(run.stdout + run.stderr, secret, args.join(' '));
  }
});

test('a secret or probe fact in an m5_esyscmd command is its value, as written: the command sees no placeholder', async () => {
  for (const origin of ['env', 'probe'] as const) {
    for (const value of ['Pa$$w,rd&x', 'm4_dnl', 'a]b[c', '$1 $# $@', 'plain']) {
      // Inside single quotes the shell keeps the value as it is; the command itself is the template author's.
      const output = await renderDirect("v=m5_esyscmd([printf '%s' ']ENV_X['])\n", [fact('ENV_X', value, origin)]);
      assert.equal(output, `v=${value}\n`, `${origin} ${JSON.stringify(value)}`);
    }
  }
});
