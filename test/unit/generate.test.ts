// Build-time generators (FORMAT.md section 7): run on the operator's side with the inputs they declare, their
// output joins the machine's tree, and they run again only when those inputs change.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { declaredInputs } from '../../src/build/generate.ts';
import { scanTree } from '../../src/build/tree.ts';
import { reconcile } from '../../src/plan/reconcile.ts';
import { buildError, buildOne, layerList, makeRepo, manifestOf, preludeOnlyBase, readTree, treeFile, writeFiles, type FixtureFile } from '../helpers/repo.ts';

const generatorFile = 'layers/app/usr/local/opt/initd/generators/app';
/** A generator that makes a unit per declaration, counts its runs in a file beside the repository, and names each output's declaration. */
const generator = (runs: string): FixtureFile => ({
  mode: 0o755,
  content: `#!/bin/bash
# Makes app-<name>.service per /usr/local/opt/app/<name>.conf.
# inputs: /usr/local/opt/app/*.conf
set -euo pipefail
echo run >> ${runs}
mkdir -p "$2/usr/local/lib/systemd/system"
for conf in "$1"/usr/local/opt/app/*.conf; do
  [[ -e $conf ]] || continue
  name=\${conf##*/}; name=\${name%.conf}
  if grep -q '^BROKEN' "$conf"; then echo "/usr/local/opt/app/$name.conf: it is broken" >&2; exit 1; fi
  printf '[Service]\\nExecStart=/bin/sleep infinity\\n# %s\\n' "$(cat "$conf")" > "$2/usr/local/lib/systemd/system/app-$name.service"
  printf '%s\\t%s\\n' "/usr/local/lib/systemd/system/app-$name.service" "/usr/local/opt/app/$name.conf"
done
`,
});

function repo(extra: Record<string, FixtureFile> = {}) {
  const root = makeRepo({
    ...preludeOnlyBase,
    ...layerList('app'),
    'layers/app/usr/local/opt/app/web.conf': 'PORT=80\n',
    'layers/app/etc/unrelated': 'x\n',
    ...extra,
  });
  const runs = join(root, 'runs');
  writeFiles(root, { [generatorFile]: generator(runs) });
  return { root, runs: () => (existsSync(runs) ? readFileSync(runs, 'utf8').split('\n').filter(Boolean).length : 0) };
}

test("a generator's outputs join the tree and the manifest; each records its declaration", async () => {
  const { root, runs } = repo();
  assert.equal((await buildOne(root, 'm')).status, 'built');
  assert.equal(runs(), 1);
  assert.match(readTree(root, 'm', '/usr/local/lib/systemd/system/app-web.service'), /# PORT=80/);
  const entries = manifestOf(root, 'm').entries;
  assert.equal(entries['/usr/local/lib/systemd/system/app-web.service']?.type, 'file');
  assert.equal(scanTree(join(root, 'var/build/m/tree'))['/usr/local/lib/systemd/system/app-web.service']?.type, 'file');
  const generated = JSON.parse(readFileSync(join(root, 'var/build/m/generated.json'), 'utf8'));
  assert.deepEqual(generated['/usr/local/opt/initd/generators/app'].from, { '/usr/local/lib/systemd/system/app-web.service': '/usr/local/opt/app/web.conf' });
});

test('a generator runs again only when a file it declares as input, or the generator, changes; its outputs follow', async () => {
  const { root, runs } = repo();
  await buildOne(root, 'm');
  writeFiles(root, { 'layers/app/etc/unrelated': 'y\n' });
  assert.equal((await buildOne(root, 'm')).status, 'built');
  assert.equal(runs(), 1, 'a file it does not read changed: not run');
  writeFiles(root, { 'layers/app/usr/local/opt/app/web.conf': 'PORT=81\n' });
  await buildOne(root, 'm');
  assert.equal(runs(), 2, 'its input changed (the quick path)');
  assert.match(readTree(root, 'm', '/usr/local/lib/systemd/system/app-web.service'), /# PORT=81/);
  writeFiles(root, { 'layers/app/usr/local/opt/app/db.conf': 'PORT=5432\n' });
  await buildOne(root, 'm');
  assert.equal(runs(), 3, 'an input added (the full plan)');
  assert.ok(manifestOf(root, 'm').entries['/usr/local/lib/systemd/system/app-db.service']);
  rmSync(join(root, 'layers/app/usr/local/opt/app/web.conf'));
  await buildOne(root, 'm');
  assert.equal(runs(), 4);
  assert.equal(manifestOf(root, 'm').entries['/usr/local/lib/systemd/system/app-web.service'], undefined, 'a removed declaration takes its outputs along');
  assert.ok(!existsSync(treeFile(root, 'm', '/usr/local/lib/systemd/system/app-web.service')));
  assert.equal((await buildOne(root, 'm')).status, 'up-to-date');
  assert.equal(runs(), 4);
});

test('a removed generator takes its outputs along; the tree equals the manifest', async () => {
  const { root } = repo();
  await buildOne(root, 'm');
  rmSync(join(root, generatorFile));
  assert.equal((await buildOne(root, 'm')).status, 'built');
  const entries = manifestOf(root, 'm').entries;
  assert.equal(entries['/usr/local/lib/systemd/system/app-web.service'], undefined);
  assert.ok(!existsSync(join(root, 'var/build/m/generated.json')));
  const tree = scanTree(join(root, 'var/build/m/tree'));
  assert.deepEqual(Object.keys(tree).sort(), Object.keys(entries).sort());
});

test("a generator's refusal fails that machine, naming the repository file of the declaration; a generator without inputs is refused", async () => {
  const { root } = repo({ 'layers/app/usr/local/opt/app/bad.conf': 'BROKEN\n' });
  const error = await buildError(root);
  assert.match(error.message, /the generator \/usr\/local\/opt\/initd\/generators\/app failed \(exit status 1\)/);
  assert.match(error.message, /layers\/app\/usr\/local\/opt\/app\/bad\.conf \(\/usr\/local\/opt\/app\/bad\.conf\): it is broken/);
  assert.equal(error.where?.file, 'layers/app/usr/local/opt/initd/generators/app');

  const bare = makeRepo({ ...preludeOnlyBase, ...layerList('app'), [generatorFile]: { mode: 0o755, content: '#!/bin/bash\ntrue\n' } });
  assert.match((await buildError(bare)).message, /declares no inputs/);

  const plain = makeRepo({ ...preludeOnlyBase, ...layerList('app'), [generatorFile]: { mode: 0o644, content: '#!/bin/bash\n# inputs: /x\ntrue\n' } });
  assert.match((await buildError(plain)).message, /cannot run the generator \/usr\/local\/opt\/initd\/generators\/app/);
});

test('a generator that fails while another still writes: the failure is told, once the other has ended', async () => {
  const root = makeRepo({
    ...preludeOnlyBase,
    ...layerList('app'),
    'layers/app/usr/local/opt/app/x.conf': 'x\n',
    [generatorFile]: {
      mode: 0o755,
      content: '#!/bin/bash\n# inputs: /usr/local/opt/app/*.conf\nsleep 0.2\necho "/usr/local/opt/app/x.conf: refused at once" >&2\nexit 1\n',
    },
    'layers/app/usr/local/opt/initd/generators/slow': {
      mode: 0o755,
      content:
        '#!/bin/bash\n# inputs: /usr/local/opt/app/*.conf\nfor i in $(seq 1500); do mkdir -p "$2/usr/local/x$i"; echo "$i" > "$2/usr/local/x$i/f"; done\n',
    },
  });
  const error = await buildError(root);
  assert.match(error.message, /the generator \/usr\/local\/opt\/initd\/generators\/app failed \(exit status 1\)/);
  assert.match(error.message, /refused at once/);
});

test("a generator may not make a path a source makes, nor another generator's", async () => {
  const { root } = repo({ 'layers/app/usr/local/lib/systemd/system/app-web.service': '[Service]\n' });
  const error = await buildError(root);
  assert.match(
    error.message,
    /made \/usr\/local\/lib\/systemd\/system\/app-web\.service, which layers\/app\/usr\/local\/lib\/systemd\/system\/app-web\.service makes/,
  );
});

test('the generator sees only its declared inputs, not the rest of the tree', async () => {
  const root = makeRepo({
    ...preludeOnlyBase,
    ...layerList('app'),
    'layers/app/usr/local/opt/app/web.conf': 'x\n',
    'layers/app/etc/secret': 'hidden\n',
    [generatorFile]: {
      mode: 0o755,
      content:
        '#!/bin/bash\n# inputs: /usr/local/opt/app/*.conf\nset -e\nmkdir -p "$2/usr/local/share"\n(cd "$1" && find . -type f | sort) > "$2/usr/local/share/seen"\n',
    },
  });
  assert.equal((await buildOne(root, 'm')).status, 'built');
  assert.equal(readTree(root, 'm', '/usr/local/share/seen'), './usr/local/opt/app/web.conf\n');
});

test('the inputs line: globs in the leading comment', () => {
  assert.deepEqual(declaredInputs('#!/bin/bash\n# What it does.\n# inputs: /a/* /b/**\n#inputs: /c\nset -e\n# inputs: /late\n'), ['/a/*', '/b/**', '/c']);
});

test("reasons name the declaration a generated unit came from; an Accept=yes socket's per-connection services and a slice are never restarted", () => {
  const unit = '/usr/local/lib/systemd/system/';
  const before = {
    format: 1 as const,
    machine: 'm',
    entries: {
      [`${unit}f.socket`]: { type: 'file' as const, mode: '0644', sha256: 'a' },
      [`${unit}f@.service`]: { type: 'file' as const, mode: '0644', sha256: 'a' },
      [`${unit}s.slice`]: { type: 'file' as const, mode: '0644', sha256: 'a' },
    },
    packages: { install: [], purge: [] },
  };
  const after = {
    ...before,
    entries: {
      [`${unit}f.socket`]: { type: 'file' as const, mode: '0644', sha256: 'b' },
      [`${unit}f@.service`]: { type: 'file' as const, mode: '0644', sha256: 'b' },
      [`${unit}sockets.target.wants/g.socket`]: { type: 'link' as const, target: '../g.socket' },
      [`${unit}g.socket`]: { type: 'file' as const, mode: '0644', sha256: 'b' },
      [`${unit}s.slice`]: { type: 'file' as const, mode: '0644', sha256: 'b' },
    },
  };
  const read = (path: string) => (path.endsWith('.socket') ? '[Socket]\nAccept=yes\n' : '[Service]\n');
  const declared = (path: string) => (path.includes('/g.socket') ? '/usr/local/opt/app/g.conf' : undefined);
  const plan = reconcile(before, after, read, [], declared);
  assert.deepEqual(
    plan.units.map((u) => [u.unit, u.action, u.reasons]),
    [
      ['f.socket', 'restart', [`${unit}f.socket changed`]],
      ['g.socket', 'start', [`${unit}sockets.target.wants/g.socket added (declared in /usr/local/opt/app/g.conf)`]],
    ],
  );
});
