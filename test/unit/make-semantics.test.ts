// Templates are rendered again as make would: when the template, a file it includes, the prelude or a fact
// it reads changed; never just because it runs a command (m5_esyscmd). `build --rerender` renders them all.
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Builder } from '../../src/build/builder.ts';
import { buildOne, layerList, makeRepo, readTree, repoPaths, runCli, writeFiles } from '../helpers/repo.ts';

/** A command that notes each render of `name` in counts/<name> and prints nothing. */
const counted = (name: string) => `m5_esyscmd([mkdir -p counts && echo >> counts/${name}])`;

/** How many times the template `name` rendered so far. */
function renders(root: string, name: string): number {
  const path = join(root, 'counts', name);
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').length - 1 : 0;
}

test('a template that runs a command is not rendered again when nothing changed; --rerender renders it', async () => {
  const root = makeRepo({
    ...layerList('a'),
    'data.txt': 'one\n',
    'layers/a/etc/generated.m4.conf': `${counted('generated')}value=m5_esyscmd([cat data.txt])`,
    'layers/a/etc/plain.m4.conf': `${counted('plain')}machine=ENV_MACHINE\n`,
  });
  assert.equal((await buildOne(root, 'm')).status, 'built');
  assert.equal(readTree(root, 'm', '/etc/generated.conf'), 'value=one\n');
  assert.equal((await buildOne(root, 'm')).status, 'up-to-date');
  const cli = runCli(['-C', root, 'build']);
  assert.equal(cli.status, 0, cli.stderr);
  assert.match(cli.stdout, /up to date/);
  assert.equal(renders(root, 'generated'), 1, 'rendered once');

  // What the command reads is not an input, as with make: the output stays until --rerender.
  writeFileSync(join(root, 'data.txt'), 'two\n');
  assert.equal((await buildOne(root, 'm')).status, 'up-to-date');
  assert.equal(readTree(root, 'm', '/etc/generated.conf'), 'value=one\n');
  const again = runCli(['-C', root, 'build', '--rerender']);
  assert.equal(again.status, 0, again.stderr);
  assert.equal(readTree(root, 'm', '/etc/generated.conf'), 'value=two\n');
  assert.equal(renders(root, 'generated'), 2);
  assert.equal(renders(root, 'plain'), 2, '--rerender renders every template');
  const result = await new Builder(repoPaths(root)).build({ rerender: true });
  assert.equal(result.machines[0]!.status, 'built');
  assert.equal(result.machines[0]!.written, 0, 'the same output is not written again');
  assert.equal(renders(root, 'generated'), 3);
  assert.match(runCli(['-C', root, 'build', '--help']).stdout, /--rerender/);
});

test('a template is rendered again when a file it includes changes, however deep, and not otherwise', async () => {
  const root = makeRepo({
    ...layerList('a', 'b'),
    'shared/frag.m4': 'frag for ENV_MACHINE\nm4_include([shared/inner.m4])',
    'shared/inner.m4': 'inner one\n',
    'layers/a/etc/inc.m4.conf': `${counted('inc')}m4_include([shared/frag.m4])`,
    'layers/a/etc/other.m4.conf': `${counted('other')}other\n`,
    'layers/a/etc/undiverted.m4.conf': `${counted('undiverted')}m4_undivert([shared/raw.txt])`,
    'shared/raw.txt': 'raw ENV_MACHINE\n',
    // A fragment kept in another layer: a change to it goes through that layer's tree.
    'layers/b/usr/local/share/b/piece.m4': 'piece one\n',
    'layers/a/etc/piece.m4.conf': `${counted('piece')}m4_sinclude([layers/b/usr/local/share/b/piece.m4])`,
  });
  await buildOne(root, 'm');
  assert.equal(readTree(root, 'm', '/etc/inc.conf'), 'frag for m\ninner one\n');
  assert.equal(readTree(root, 'm', '/etc/undiverted.conf'), 'raw ENV_MACHINE\n');
  assert.equal((await buildOne(root, 'm')).status, 'up-to-date');
  const explained = runCli(['-C', root, 'explain', 'm', '/etc/inc.conf']);
  assert.match(explained.stdout, /files included: shared\/frag\.m4, shared\/inner\.m4/, explained.stderr);
  assert.match(explained.stdout, /ENV_MACHINE\s+m\s/, 'the fact the included file reads');

  appendFileSync(join(root, 'shared/inner.m4'), 'inner two\n');
  const changed = await buildOne(root, 'm');
  assert.equal(changed.status, 'built');
  assert.equal(changed.written, 1);
  assert.equal(readTree(root, 'm', '/etc/inc.conf'), 'frag for m\ninner one\ninner two\n');
  assert.deepEqual(
    [renders(root, 'inc'), renders(root, 'other'), renders(root, 'undiverted'), renders(root, 'piece')],
    [2, 1, 1, 1],
    'only the template that includes it',
  );

  writeFileSync(join(root, 'shared/raw.txt'), 'raw two\n');
  await buildOne(root, 'm');
  assert.equal(readTree(root, 'm', '/etc/undiverted.conf'), 'raw two\n');
  assert.equal(renders(root, 'undiverted'), 2);

  writeFiles(root, { 'layers/b/usr/local/share/b/piece.m4': 'piece two\n' });
  await buildOne(root, 'm');
  assert.equal(readTree(root, 'm', '/etc/piece.conf'), 'piece two\n');
  assert.deepEqual([renders(root, 'inc'), renders(root, 'other'), renders(root, 'piece')], [2, 1, 2]);

  // A template that stops including a file no longer depends on it.
  writeFiles(root, { 'layers/a/etc/inc.m4.conf': `${counted('inc')}no include\n` });
  await buildOne(root, 'm');
  assert.equal(renders(root, 'inc'), 3);
  writeFileSync(join(root, 'shared/inner.m4'), 'inner three\n');
  assert.equal((await buildOne(root, 'm')).status, 'up-to-date');
  assert.equal(renders(root, 'inc'), 3);
});

test('a fact change renders again only the templates that read it: by name, through the prelude or another fact', async () => {
  const root = makeRepo({
    ...layerList('a'),
    'facts/m.json': JSON.stringify({ ENV_PORT: 80, ENV_DOMAIN: 'example.org', ENV_MAIL: 'me@ENV_DOMAIN', ENV_OTHER: 'x' }),
    'layers/a/etc/port.m4.conf': `${counted('port')}port=ENV_PORT\n`,
    'layers/a/etc/mail.m4.conf': `${counted('mail')}mail=ENV_MAIL\n`,
    'layers/a/etc/later.m4.conf': `${counted('later')}later=m5_or([ENV_LATER], [none])\n`,
    'layers/a/etc/none.m4.conf': `${counted('none')}no facts here\n`,
  });
  const counts = () => ['port', 'mail', 'later', 'none'].map((name) => renders(root, name));
  await buildOne(root, 'm');
  assert.deepEqual(counts(), [1, 1, 1, 1]);

  writeFiles(root, { 'facts/m.json': JSON.stringify({ ENV_PORT: 81, ENV_DOMAIN: 'example.org', ENV_MAIL: 'me@ENV_DOMAIN', ENV_OTHER: 'x' }) });
  await buildOne(root, 'm');
  assert.equal(readTree(root, 'm', '/etc/port.conf'), 'port=81\n');
  assert.deepEqual(counts(), [2, 1, 1, 1], 'only the template naming ENV_PORT');

  writeFiles(root, { 'facts/m.json': JSON.stringify({ ENV_PORT: 81, ENV_DOMAIN: 'example.net', ENV_MAIL: 'me@ENV_DOMAIN', ENV_OTHER: 'x' }) });
  await buildOne(root, 'm');
  assert.equal(readTree(root, 'm', '/etc/mail.conf'), 'mail=me@example.net\n');
  assert.deepEqual(counts(), [2, 2, 1, 1], 'ENV_MAIL is made of ENV_DOMAIN');

  writeFiles(root, {
    'facts/m.json': JSON.stringify({ ENV_PORT: 81, ENV_DOMAIN: 'example.net', ENV_MAIL: 'me@ENV_DOMAIN', ENV_OTHER: 'y', ENV_LATER: 'set' }),
  });
  await buildOne(root, 'm');
  assert.equal(readTree(root, 'm', '/etc/later.conf'), 'later=set\n');
  assert.deepEqual(counts(), [2, 2, 2, 1], 'a fact that was not set when it rendered, now set');
});

test('a template whose include names a file only at render time renders on every build', async () => {
  const root = makeRepo({
    ...layerList('a'),
    'facts/m.json': JSON.stringify({ ENV_FRAG: 'shared/one.m4' }),
    'shared/one.m4': 'one\n',
    'layers/a/etc/dynamic.m4.conf': `${counted('dynamic')}m4_include(ENV_FRAG)`,
  });
  await buildOne(root, 'm');
  assert.equal(readTree(root, 'm', '/etc/dynamic.conf'), 'one\n');
  await buildOne(root, 'm');
  assert.equal(renders(root, 'dynamic'), 2);
  writeFileSync(join(root, 'shared/one.m4'), 'two\n');
  await buildOne(root, 'm');
  assert.equal(readTree(root, 'm', '/etc/dynamic.conf'), 'two\n');
});
