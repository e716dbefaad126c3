// FORMAT.md section 5: GNU m4 templates with the base layer's prelude.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import type { HomecloudError } from '../../src/load/errors.ts';
import { build, buildOne, layerList, makeRepo, readTree, runCli, treeFile, type FixtureFile } from '../helpers/repo.ts';

const template = 'layers/a/etc/t.m4.conf';

/** Render one template of layer a for machine m; returns its output or its error. */
async function render(text: string, files: Record<string, FixtureFile> = {}): Promise<{ output?: string; error?: HomecloudError; root: string }> {
  const root = makeRepo({ ...layerList('a'), [template]: text, ...files });
  const result = await buildOne(root, 'm');
  if (result.status === 'failed') return { error: result.error!, root };
  return { output: readTree(root, 'm', '/etc/t.conf'), root };
}

async function renders(text: string, files: Record<string, FixtureFile> = {}): Promise<string> {
  const { output, error } = await render(text, files);
  assert.equal(error, undefined, error?.toString());
  return output!;
}

async function fails(text: string, files: Record<string, FixtureFile> = {}): Promise<HomecloudError> {
  const { error, root } = await render(text, files);
  assert.ok(error, 'the render should fail');
  assert.equal(existsSync(treeFile(root, 'm', '/etc/t.conf')), false, 'a failed render renders nothing');
  return error;
}

test('facts are passed as macros (-DKEY=VALUE); a value may contain "="', async () => {
  assert.equal(await renders('machine=ENV_MACHINE url=ENV_URL\n', { 'facts/m.json': '{"ENV_URL": "http://x/?a=b"}' }), 'machine=m url=http://x/?a=b\n');
});

test('m5_assert: the value of a set fact', async () => {
  assert.equal(await renders('user=m5_assert([ENV_USER])\n', { 'facts/m.json': '{"ENV_USER": "www"}' }), 'user=www\n');
});

test('m5_assert: a missing fact fails the render with the template file and line, and the fact name', async () => {
  const error = await fails('line one\nline two\n\nuser=m5_assert([ENV_USER])\nlast\n');
  assert.deepEqual(error.where, { file: template, line: 4 });
  assert.match(error.message, /ENV_USER/);
  assert.match(error.toString(), /^layers\/a\/etc\/t\.m4\.conf:4: required fact ENV_USER is not set/);
});

test('m5_or: the fact when set and not empty, else the default', async () => {
  const text = 'set=m5_or([ENV_SET], [dflt])\nunset=m5_or([ENV_UNSET], [dflt])\nempty=m5_or([ENV_EMPTY], [dflt])\n';
  assert.equal(await renders(text, { 'facts/m.env': 'ENV_SET=val\nENV_EMPTY=\n' }), 'set=val\nunset=dflt\nempty=dflt\n');
});

test('m5_join: the non-empty items separated by sep', async () => {
  const text = ['a=m5_join([,], a, b, c)', 'b=m5_join([-], a, , b, )', 'c=m5_join([-])', 'd=m5_join([, ], [x,y], z)', 'e=m5_join([:], only)', ''].join('\n');
  assert.equal(await renders(text), ['a=a,b,c', 'b=a-b', 'c=', 'd=x,y, z', 'e=only', ''].join('\n'));
});

test('m5_for: body once per item with VAR set; nothing for no items or one empty item', async () => {
  const text = [
    'a=m5_for([X], [<X>], a, b, c)',
    'b=m5_for([X], [<X>], )',
    'c=m5_for([X], [<X>])',
    'd=m5_for([X], [<X>], one)',
    'e=m5_for([X], [X;], ENV_MACHINE)',
    'after=X',
    '',
  ].join('\n');
  assert.equal(await renders(text), ['a=<a><b><c>', 'b=', 'c=', 'd=<one>', 'e=m;', 'after=X', ''].join('\n'));
});

test('m5_argn: the nth item from 1, empty past the end', async () => {
  const text = ['a=m5_argn(2, a, b, c)', 'b=m5_argn(1, a)', 'c=m5_argn(4, a, b, c)', 'd=m5_argn(0, a, b)', ''].join('\n');
  assert.equal(await renders(text), ['a=b', 'b=a', 'c=', 'd=', ''].join('\n'));
});

test('m5_clamp: x limited to lo..hi', async () => {
  const text = ['a=m5_clamp(1, 5, 3)', 'b=m5_clamp(1, 0, 3)', 'c=m5_clamp(1, 2, 3)', 'd=m5_clamp(-5, -9, 5)', 'e=m5_clamp(2, ENV_NPROC, 8)', ''].join('\n');
  assert.equal(await renders(text, { 'facts/m.json': '{"ENV_NPROC": 16}' }), ['a=3', 'b=1', 'c=2', 'd=-5', 'e=8', ''].join('\n'));
});

test('m5_esyscmd: inserts the output of a shell command run from the repository root', async () => {
  const { output, root } = await render(
    'cwd=m5_esyscmd([printf %s "$(pwd)"])\ngen=m5_esyscmd([./scripts/gen.sh "two words"])\nfact=m5_esyscmd([./scripts/gen.sh ]ENV_MACHINE)\n',
    {
      'scripts/gen.sh': { content: '#!/bin/sh\nprintf "generated for <%s>" "$1"\n', mode: 0o755 },
    },
  );
  assert.equal(output, `cwd=${root}\ngen=generated for <two words>\nfact=generated for <m>\n`);
});

test('m5_esyscmd: a failing command fails the render with file:line and its exit status', async () => {
  const error = await fails('one\nvalue=m5_esyscmd([exit 3])\n');
  assert.deepEqual(error.where, { file: template, line: 2 });
  assert.match(error.message, /exit status 3/);
});

test('m5_esyscmd: pipelines run with pipefail (improvement)', async () => {
  const error = await fails('one\ntwo\nvalue=m5_esyscmd([false | cat])\n');
  assert.deepEqual(error.where, { file: template, line: 3 });
  assert.match(error.message, /exit status 1/);
  assert.equal(await renders('value=m5_esyscmd([echo a | tr a b])'), 'value=b\n');
});

test("a template's commands start with no signal blocked or ignored, as from a shell (Node itself ignores SIGPIPE)", async () => {
  const output = await renders("m5_esyscmd([grep -E '^Sig(Blk|Ign):' /proc/self/status])");
  const mask = (name: string) => BigInt(`0x${new RegExp(`^${name}:\\s*([0-9a-f]+)$`, 'm').exec(output)![1]}`);
  assert.equal(mask('SigBlk'), 0n, output);
  // SIGPIPE is signal 13: a pipeline's writer must end when its reader has.
  assert.equal(mask('SigIgn') & (1n << 12n), 0n, output);
});

test("renders get the same environment every time: the caller's variables do not leak in", () => {
  const root = makeRepo({ ...layerList('a'), [template]: 'm5_esyscmd([printf "leak=%s home=%s tz=%s" "$HC_TEST_LEAK" "$HOME" "$TZ"])\n' });
  const run = runCli(['-C', root, 'build'], { env: { HC_TEST_LEAK: 'leaked', TZ: 'Asia/Tokyo', HOME: '/nonexistent' } });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(readTree(root, 'm', '/etc/t.conf'), `leak= home=${root} tz=UTC\n`);
});

test('comments are off: macros on "#" lines expand', async () => {
  const text = '# host ENV_MACHINE, m5_or([ENV_UNSET], [fallback])\n#!/bin/sh ENV_MACHINE\n';
  assert.equal(await renders(text), '# host m, fallback\n#!/bin/sh m\n');
});

test('quotes are [ and ]; builtins need the m4_ prefix', async () => {
  const text = 'quoted=[ENV_MACHINE]\ndefine(x) len(abc) dnl index\nlen=m4_len([abc])\n';
  assert.equal(await renders(text), 'quoted=ENV_MACHINE\ndefine(x) len(abc) dnl index\nlen=3\n');
});

test('an m4 syntax error fails the render with file and line and the message', async () => {
  const error = await fails('good\nm4_eval(1+)\n');
  assert.deepEqual(error.where, { file: template, line: 2 });
  assert.match(error.message, /bad expression/);

  const unterminated = await fails('good\nopen [quote\nmore\n');
  assert.equal(unterminated.where?.file, template);
  assert.equal(typeof unterminated.where?.line, 'number');
  assert.match(unterminated.message, /end of file in string/);

  const argumentList = await fails('good\n\nm4_ifelse(a,\nb\n');
  assert.equal(argumentList.where?.file, template);
  assert.equal(typeof argumentList.where?.line, 'number');
  assert.match(argumentList.message, /end of file in argument list/);
});

test('warnings are fatal (--fatal-warnings)', async () => {
  const error = await fails('a\nb\nm4_len([a], [b])\n');
  assert.deepEqual(error.where, { file: template, line: 3 });
  assert.match(error.message, /excess arguments/);
});

test('a failing template fails only its machine', async () => {
  const root = makeRepo({
    'machines/bad/usr/local/opt/initd/layers/10.txt': '+ a\n',
    'machines/good/usr/local/opt/initd/layers/10.txt': '+ a\n',
    'layers/a/etc/t.m4.conf': 'm5_assert([ENV_ONLY_GOOD])\n',
    'facts/good.json': '{"ENV_ONLY_GOOD": "yes"}',
  });
  const report = await build(root);
  const byName = Object.fromEntries(report.machines.map((m) => [m.machine, m]));
  assert.equal(byName.bad!.status, 'failed');
  assert.equal(byName.good!.status, 'built', byName.good!.error?.toString());
  assert.equal(readTree(root, 'good', '/etc/t.conf'), 'yes\n');
});

test('prelude files of the base layer are read in sorted order; files not named *.m4 are not read', async () => {
  const output = await renders('v=m5_v k=m5_kept\n', {
    'layers/_/usr/local/include/m4/20-second.m4': "m4_define(`m5_v', `second')m4_dnl\n",
    'layers/_/usr/local/include/m4/10-first.m4': "m4_define(`m5_v', `first')m4_define(`m5_kept', `kept')m4_dnl\n",
    'layers/_/usr/local/include/m4/notes.txt': 'NOT A PRELUDE\n',
  });
  assert.equal(output, 'v=second k=kept\n');
});

test("a repository's own _ layer replaces the standard prelude", async () => {
  const output = await renders('hello=m5_hello or=m5_or([ENV_X], [d]) [kept]\n', {
    'layers/_/usr/local/include/m4/00-own.m4': "m4_define(`m5_hello', `own prelude')m4_dnl\n",
  });
  // Only the own prelude was read: m5_or is not defined and [ ] are not quotes.
  assert.equal(output, 'hello=own prelude or=m5_or([ENV_X], [d]) [kept]\n');
});

test('only the base layer provides preludes: m4 files of other layers and the machine are just deployed', async () => {
  const output = await renders('x=m5_extra y=m5_mine\n', {
    'layers/a/usr/local/include/m4/50-extra.m4': 'm4_define([m5_extra], [extra])m4_dnl\n',
    'machines/m/usr/local/include/m4/60-mine.m4': 'm4_define([m5_mine], [mine])m4_dnl\n',
  });
  assert.equal(output, 'x=m5_extra y=m5_mine\n');
});

test('the standard prelude is deployed with the tree, and a template in the machine directory renders too', async () => {
  const root = makeRepo({ 'machines/m/etc/motd.m4.txt': 'Welcome to ENV_MACHINE\n' });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(readTree(root, 'm', '/etc/motd.txt'), 'Welcome to m\n');
  assert.ok(existsSync(treeFile(root, 'm', '/usr/local/include/m4/00-prelude.m4')));
});
