import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, cpSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { scanTree } from '../../src/build/tree.ts';
import { build, makeRepo, manifestOf, writeFiles } from '../helpers/repo.ts';

/**
 * Incremental builds (the quick path for content-only changes, and its
 * fallbacks to a full plan) must give exactly what a build from scratch gives.
 */
const scratch: string[] = [];
after(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

async function fromScratch(root: string) {
  const copy = mkdtempSync(join(tmpdir(), 'homecloud-scratch-'));
  scratch.push(copy);
  cpSync(root, copy, { recursive: true, verbatimSymlinks: true, filter: (source) => !source.startsWith(join(root, 'var')) });
  return { copy, report: await build(copy) };
}

const machines = ['a', 'b'];

async function assertSameAsScratch(root: string, step: string, plans?: Record<string, string>): Promise<void> {
  const incremental = await build(root);
  if (plans)
    assert.deepEqual(Object.fromEntries(incremental.machines.map((m) => [m.machine, m.layout ?? m.status])), plans, `${step}: how machines were planned`);
  const { copy, report } = await fromScratch(root);
  assert.deepEqual(
    incremental.machines.map((m) => [m.machine, m.status === 'failed' ? m.error?.message : 'ok']),
    report.machines.map((m) => [m.machine, m.status === 'failed' ? m.error?.message : 'ok']),
    `${step}: same outcome`,
  );
  for (const machine of machines) {
    if (report.machines.find((m) => m.machine === machine)?.status === 'failed') continue;
    const mine = manifestOf(root, machine);
    assert.deepEqual(mine, manifestOf(copy, machine), `${step}: ${machine}'s manifest`);
    // Byte for byte: a deploy compares the manifest's hash with the machine's.
    const file = (at: string) => readFileSync(join(at, 'var/build', machine, 'manifest.json'), 'utf8');
    assert.equal(file(root), file(copy), `${step}: ${machine}'s manifest file`);
    assert.deepEqual(scanTree(join(root, 'var/build', machine, 'tree')), scanTree(join(copy, 'var/build', machine, 'tree')), `${step}: ${machine}'s tree`);
  }
}

test('every incremental build equals a build from scratch', async () => {
  const root = makeRepo({
    'machines/a/usr/local/opt/initd/layers/10.txt': '+ web\n+ tools\n',
    'machines/b/usr/local/opt/initd/layers/10.txt': '+ web\n',
    'layers/web/usr/local/etc/web/site.conf': 'listen 80\n',
    'layers/web/usr/local/etc/web/name.m4.conf': 'name ENV_MACHINE m5_or([ENV_PORT], 80)\n',
    'layers/web/usr/local/etc/web/shared.txt': 'same\n',
    'layers/web/usr/local/doc/examples/web.env': 'ENV_PORT=8080\n',
    'layers/web/usr/local/lib/systemd/system/multi-user.target.wants/web.service': { link: '../web.service' },
    'layers/tools/usr/local/etc/web/shared.txt': 'same\n',
    'layers/tools/usr/local/bin/tool': { content: '#!/bin/sh\necho tool\n', mode: 0o755 },
    'machines/a/usr/local/etc/web/site.conf': 'listen 8443\n',
  });
  await assertSameAsScratch(root, 'first build');
  const quick = { a: 'quick', b: 'quick' };
  const steps: [string, () => void, Record<string, string>?][] = [
    ['a plain file changes', () => writeFiles(root, { 'layers/web/usr/local/etc/web/index.txt': 'index\n' })],
    ['a sole plain file changes', () => appendFileSync(join(root, 'layers/web/usr/local/etc/web/index.txt'), 'more\n'), quick],
    ['a template changes', () => appendFileSync(join(root, 'layers/web/usr/local/etc/web/name.m4.conf'), '# more\n'), quick],
    ['a mode changes', () => chmodSync(join(root, 'layers/tools/usr/local/bin/tool'), 0o700), { a: 'quick', b: 'up-to-date' }],
    [
      'a link target changes',
      () => writeFiles(root, { 'layers/web/usr/local/lib/systemd/system/multi-user.target.wants/web.service': { link: '../other.service' } }),
      quick,
    ],
    ['a file that one machine overrides changes', () => appendFileSync(join(root, 'layers/web/usr/local/etc/web/site.conf'), 'more\n'), quick],
    [
      "the machine's overriding file changes",
      () => appendFileSync(join(root, 'machines/a/usr/local/etc/web/site.conf'), 'more\n'),
      { a: 'quick', b: 'up-to-date' },
    ],
    [
      'identical files in two layers change together',
      () => writeFiles(root, { 'layers/web/usr/local/etc/web/shared.txt': 'both\n', 'layers/tools/usr/local/etc/web/shared.txt': 'both\n' }),
      { a: 'full', b: 'quick' },
    ],
    ['a layer default changes', () => writeFiles(root, { 'layers/web/usr/local/doc/examples/web.env': 'ENV_PORT=9090\n' })],
    ['a machine override changes', () => appendFileSync(join(root, 'machines/a/usr/local/etc/web/site.conf'), 'tls on\n')],
    ['an overridden layer file changes', () => appendFileSync(join(root, 'layers/web/usr/local/etc/web/site.conf'), 'again\n')],
    ['a file is added', () => writeFiles(root, { 'layers/web/usr/local/etc/web/new.conf': 'new\n' })],
    ['a file is renamed', () => renameSync(join(root, 'layers/web/usr/local/etc/web/new.conf'), join(root, 'layers/web/usr/local/etc/web/renamed.conf'))],
    ['a file is removed', () => rmSync(join(root, 'layers/web/usr/local/etc/web/renamed.conf'))],
    ['a declared link is added', () => writeFiles(root, { 'layers/tools/usr/local/opt/initd/links/t.txt': '/usr/local/bin/t2 tool\n' })],
    ['a fact changes', () => writeFiles(root, { 'facts/b.json': '{"ENV_PORT": 7070}' })],
    // The facts as the full layout just before took them (remembered in its layout memory).
    ['a template changes after a fact change', () => appendFileSync(join(root, 'layers/web/usr/local/etc/web/name.m4.conf'), '# again\n'), quick],
    ['identical files in two layers start to differ', () => writeFiles(root, { 'layers/tools/usr/local/etc/web/shared.txt': 'different\n' })],
    ['they agree again', () => writeFiles(root, { 'layers/tools/usr/local/etc/web/shared.txt': 'same\n' })],
  ];
  for (const [step, change, plans] of steps) {
    change();
    await assertSameAsScratch(root, step, plans);
  }
});

test('with a generator, an incremental build still equals a build from scratch', async () => {
  const root = makeRepo({
    'machines/a/usr/local/opt/initd/layers/10.txt': '+ app\n',
    'machines/b/usr/local/opt/initd/layers/10.txt': '+ app\n',
    'layers/app/usr/local/opt/app/web.conf': 'PORT=80\n',
    'layers/app/usr/local/etc/plain.txt': 'plain\n',
    'layers/app/usr/local/opt/initd/generators/app': {
      mode: 0o755,
      content: `#!/bin/bash
# inputs: /usr/local/opt/app/*.conf
set -euo pipefail
mkdir -p "$2/usr/local/lib/systemd/system"
for conf in "$1"/usr/local/opt/app/*.conf; do
  name=\${conf##*/}; name=\${name%.conf}
  printf '# %s\\n' "$(cat "$conf")" > "$2/usr/local/lib/systemd/system/app-$name.service"
done
`,
    },
  });
  await assertSameAsScratch(root, 'first build');
  const quick = { a: 'quick', b: 'quick' };
  appendFileSync(join(root, 'layers/app/usr/local/etc/plain.txt'), 'more\n');
  await assertSameAsScratch(root, 'a plain file beside a generator changes', quick);
  appendFileSync(join(root, 'layers/app/usr/local/opt/app/web.conf'), 'TLS=on\n');
  await assertSameAsScratch(root, "a generator's input changes", quick);
});

test('a machine built alone still sees a change another machine was rebuilt for', async () => {
  const root = makeRepo({
    'machines/a/usr/local/opt/initd/layers/10.txt': '+ web\n',
    'machines/b/usr/local/opt/initd/layers/10.txt': '+ web\n',
    'layers/web/usr/local/etc/web.conf': 'one\n',
  });
  await build(root);
  writeFiles(root, { 'layers/web/usr/local/etc/web.conf': 'two\n' });
  await build(root, ['a']);
  await build(root, ['b']);
  const { copy } = await fromScratch(root);
  assert.deepEqual(manifestOf(root, 'b'), manifestOf(copy, 'b'));
});

test('a machine left behind by one change or by many still gets every change since its last build', async () => {
  const root = makeRepo({
    'machines/a/usr/local/opt/initd/layers/10.txt': '+ web\n',
    'machines/b/usr/local/opt/initd/layers/10.txt': '+ web\n',
    'layers/web/usr/local/etc/one.conf': 'one\n',
    'layers/web/usr/local/etc/two.conf': 'two\n',
    'layers/web/usr/local/etc/name.m4.conf': 'name ENV_MACHINE\n',
  });
  await build(root);
  // One change behind: the tree as b was built from it is remembered, and it is compared file by file.
  appendFileSync(join(root, 'layers/web/usr/local/etc/one.conf'), 'a\n');
  await build(root, ['a']);
  appendFileSync(join(root, 'layers/web/usr/local/etc/name.m4.conf'), '# b\n');
  assert.equal((await build(root, ['b'])).machines[0]?.layout, 'quick');
  assert.deepEqual(manifestOf(root, 'b'), manifestOf((await fromScratch(root)).copy, 'b'));
  // Many changes behind: older trees are forgotten, and every file is compared with the manifest.
  for (let i = 0; i < 5; i++) {
    appendFileSync(join(root, `layers/web/usr/local/etc/${i % 2 ? 'one' : 'two'}.conf`), `${i}\n`);
    await build(root, ['a']);
  }
  assert.equal((await build(root, ['b'])).machines[0]?.layout, 'quick');
  assert.deepEqual(manifestOf(root, 'b'), manifestOf((await fromScratch(root)).copy, 'b'));
  // Three trees of the layer are kept, the older ones removed.
  assert.equal(readdirSync(join(root, 'var/build/trees')).filter((name) => name.startsWith('web-')).length, 3);
});

test('a secret fact is not remembered for quick builds: they read it where it is', async () => {
  const root = makeRepo({
    'machines/a/usr/local/opt/initd/layers/10.txt': '+ web\n',
    'machines/b/usr/local/opt/initd/layers/10.txt': '+ web\n',
    'layers/web/usr/local/etc/web/name.m4.conf': 'name ENV_MACHINE m5_or([ENV_TOKEN], none)\n',
    'facts/a.env': 'ENV_TOKEN=s3cret-value\n',
  });
  await assertSameAsScratch(root, 'first build');
  const memory = (machine: string) => readFileSync(join(root, 'var/build', machine, 'layout.json'), 'utf8');
  assert.doesNotMatch(memory('a'), /s3cret-value/);
  assert.equal(JSON.parse(memory('a')).facts, undefined);
  assert.equal(JSON.parse(memory('b')).facts.find((fact: { key: string }) => fact.key === 'ENV_MACHINE').value, 'b');
  appendFileSync(join(root, 'layers/web/usr/local/etc/web/name.m4.conf'), '# more\n');
  await assertSameAsScratch(root, 'a template changes', { a: 'quick', b: 'quick' });
  assert.match(readFileSync(join(root, 'var/build/a/tree/usr/local/etc/web/name.conf'), 'utf8'), /^name a s3cret-value$/m);
});
