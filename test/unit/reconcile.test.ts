import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Manifest, ManifestEntries } from '../../src/build/manifest.ts';
import { reconcile } from '../../src/plan/reconcile.ts';
import { globMatches } from '../../src/util/glob.ts';
import { unitReferences } from '../../src/plan/units.ts';

const sys = '/usr/local/lib/systemd/system';

/** A manifest of text files (hash = the text) and links. */
function manifest(files: Record<string, string | { link: string }>): { manifest: Manifest; read: (path: string) => string } {
  const entries: ManifestEntries = {};
  for (const [path, content] of Object.entries(files)) {
    entries[path] = typeof content === 'string' ? { type: 'file', mode: '0644', sha256: content } : { type: 'link', target: content.link };
  }
  return { manifest: { format: 1, machine: 'm', entries, packages: { install: [], purge: [] } }, read: (path) => files[path] as string };
}

const nginx = `[Service]\nExecStart=/usr/sbin/nginx -c /usr/local/opt/nginx/conf/main.nginx\nExecReload=/usr/sbin/nginx -s reload\nBindReadOnlyPaths=/usr/local/opt/nginx/conf:/etc/nginx\n`;
const hello = `[Service]\nExecStart=/usr/local/bin/hello\nEnvironmentFile=-/usr/local/etc/default/hello.env\n`;
const base = {
  [`${sys}/nginx.service`]: nginx,
  [`${sys}/hello.service`]: hello,
  [`${sys}/tick@.service`]: '[Service]\nExecStart=/bin/true %i\n',
  '/usr/local/opt/nginx/conf/main.nginx': 'v1',
  '/usr/local/opt/nginx/conf/sites.nginx': 'v1',
  '/usr/local/etc/default/hello.env': 'A=1',
  '/usr/local/bin/hello': 'script v1',
  [`${sys}/multi-user.target.wants/hello.service`]: { link: '../hello.service' },
};

test('nothing changed: nothing to do', () => {
  const { manifest: m, read } = manifest(base);
  assert.deepEqual(reconcile(m, m, read), { added: [], changed: [], removed: [], daemonReload: false, units: [], packages: { install: [], purge: [] } });
});

test('a file inside a directory a unit binds read-only: reload (the unit has ExecReload), and only that unit', () => {
  const before = manifest(base);
  const after = manifest({ ...base, '/usr/local/opt/nginx/conf/sites.nginx': 'v2' });
  const plan = reconcile(before.manifest, after.manifest, after.read);
  assert.deepEqual(plan.changed, ['/usr/local/opt/nginx/conf/sites.nginx']);
  assert.equal(plan.daemonReload, false);
  assert.deepEqual(plan.units, [
    {
      unit: 'nginx.service',
      action: 'reload-or-restart',
      reasons: ['/usr/local/opt/nginx/conf/sites.nginx changed (in /usr/local/opt/nginx/conf), which nginx.service reads'],
    },
  ]);
});

test('an EnvironmentFile (optional, with -) or the ExecStart script changed: restart, since the unit cannot reload', () => {
  const before = manifest(base);
  for (const [path, content] of [
    ['/usr/local/etc/default/hello.env', 'A=2'],
    ['/usr/local/bin/hello', 'script v2'],
  ] as const) {
    const after = manifest({ ...base, [path]: content });
    assert.deepEqual(reconcile(before.manifest, after.manifest, after.read).units, [
      { unit: 'hello.service', action: 'restart', reasons: [`${path} changed, which hello.service reads`] },
    ]);
  }
});

test('a unit file or a drop-in changed: daemon-reload and restart that unit; a template unit: its instances', () => {
  const before = manifest(base);
  const after = manifest({ ...base, [`${sys}/hello.service`]: `${hello}Nice=5\n`, [`${sys}/tick@.service`]: '[Service]\nExecStart=/bin/false %i\n' });
  const plan = reconcile(before.manifest, after.manifest, after.read);
  assert.equal(plan.daemonReload, true);
  assert.deepEqual(
    plan.units.map((u) => [u.unit, u.action]),
    [
      ['hello.service', 'restart'],
      ['tick@*.service', 'restart'],
    ],
  );
  const dropIn = manifest({ ...base, [`${sys}/nginx.service.d/10-limits.conf`]: '[Service]\nLimitNOFILE=4096\n' });
  const withDropIn = reconcile(before.manifest, dropIn.manifest, dropIn.read);
  assert.deepEqual(
    withDropIn.units.map((u) => [u.unit, u.action]),
    [['nginx.service', 'restart']],
  );
  assert.equal(withDropIn.daemonReload, true);
});

test('a wants link added starts its unit; removed stops it; a removed unit file is stopped', () => {
  const before = manifest(base);
  const enabled = manifest({ ...base, [`${sys}/multi-user.target.wants/nginx.service`]: { link: '../nginx.service' } });
  assert.deepEqual(
    reconcile(before.manifest, enabled.manifest, enabled.read).units.map((u) => [u.unit, u.action]),
    [['nginx.service', 'start']],
  );
  const withoutLink = { ...base } as Record<string, string | { link: string }>;
  delete withoutLink[`${sys}/multi-user.target.wants/hello.service`];
  const disabled = manifest(withoutLink);
  assert.deepEqual(
    reconcile(before.manifest, disabled.manifest, disabled.read).units.map((u) => [u.unit, u.action]),
    [['hello.service', 'stop']],
  );
  const withoutUnit = { ...withoutLink };
  delete withoutUnit[`${sys}/hello.service`];
  const gone = manifest(withoutUnit);
  const plan = reconcile(before.manifest, gone.manifest, gone.read);
  assert.deepEqual(
    plan.units.map((u) => [u.unit, u.action]),
    [['hello.service', 'stop']],
  );
  assert.equal(plan.daemonReload, true);
  assert.ok(plan.removed.includes(`${sys}/hello.service`));
});

test('a new unit file alone starts nothing (daemon-reload only)', () => {
  const before = manifest(base);
  const after = manifest({ ...base, [`${sys}/new.service`]: '[Service]\nExecStart=/bin/true\n' });
  const plan = reconcile(before.manifest, after.manifest, after.read);
  assert.deepEqual(plan.units, []);
  assert.equal(plan.daemonReload, true);
  assert.deepEqual(plan.added, [`${sys}/new.service`]);
});

test('trigger lines act on a unit when a matching path changed', () => {
  const before = manifest({ ...base, '/usr/local/opt/app/x/y.conf': 'a' });
  const after = manifest({ ...base, '/usr/local/opt/app/x/y.conf': 'b' });
  const plan = reconcile(before.manifest, after.manifest, after.read, [
    { glob: '/usr/local/opt/app/**', action: 'restart', unit: 'app.service', file: 'triggers/app.txt', line: 2 },
  ]);
  assert.deepEqual(plan.units, [{ unit: 'app.service', action: 'restart', reasons: ['/usr/local/opt/app/x/y.conf changed (triggers/app.txt:2)'] }]);
  assert.ok(globMatches('/usr/local/opt/*/conf', '/usr/local/opt/a/conf'));
  assert.ok(!globMatches('/usr/local/opt/*/conf', '/usr/local/opt/a/b/conf'));
  assert.ok(globMatches('/etc/?.conf', '/etc/a.conf'));
});

test('unit references: exec prefixes, credentials, bind pairs, continuation lines, options with their file; specifiers and variables are not paths', () => {
  const refs = unitReferences(
    '[Service]\nExecStartPre=-+/usr/local/libexec/prepare --config /usr/local/opt/a.conf\nLoadCredential=token:/usr/local/etc/token\nBindPaths=/srv/data:/data \\\n  /srv/more\nExecStart=/usr/bin/x %h/y $HOME/z --conf-file=/usr/local/etc/x.conf --dir=relative\nExecReload=/bin/kill -HUP $MAINPID\n',
  );
  assert.deepEqual(refs.paths.sort(), [
    '/bin/kill',
    '/srv/data',
    '/srv/more',
    '/usr/bin/x',
    '/usr/local/etc/token',
    '/usr/local/etc/x.conf',
    '/usr/local/libexec/prepare',
    '/usr/local/opt/a.conf',
  ]);
  assert.equal(refs.reloads, true);
});

test('a file added to or removed from a directory a unit reads reloads it, as a changed one does; not when the unit itself is new', () => {
  const before = manifest(base);
  const added = manifest({ ...base, '/usr/local/opt/nginx/conf/extra.nginx': 'v1' });
  assert.deepEqual(reconcile(before.manifest, added.manifest, added.read).units, [
    {
      unit: 'nginx.service',
      action: 'reload-or-restart',
      reasons: ['/usr/local/opt/nginx/conf/extra.nginx added (in /usr/local/opt/nginx/conf), which nginx.service reads'],
    },
  ]);
  const withoutSites = { ...base } as Record<string, string | { link: string }>;
  delete withoutSites['/usr/local/opt/nginx/conf/sites.nginx'];
  const removed = manifest(withoutSites);
  assert.deepEqual(reconcile(before.manifest, removed.manifest, removed.read).units, [
    {
      unit: 'nginx.service',
      action: 'reload-or-restart',
      reasons: ['/usr/local/opt/nginx/conf/sites.nginx removed (in /usr/local/opt/nginx/conf), which nginx.service reads'],
    },
  ]);
  const fresh = manifest({ [`${sys}/nginx.service`]: nginx, '/usr/local/opt/nginx/conf/main.nginx': 'v1' });
  assert.deepEqual(reconcile(undefined, fresh.manifest, fresh.read).units, []);
});

test('trigger lines act on removed paths too', () => {
  const before = manifest({ ...base, '/usr/local/opt/app/x/y.conf': 'a' });
  const after = manifest(base);
  const plan = reconcile(before.manifest, after.manifest, after.read, [
    { glob: '/usr/local/opt/app/**', action: 'reload', unit: 'app.service', file: 'triggers/app.txt', line: 1 },
  ]);
  assert.deepEqual(plan.units, [{ unit: 'app.service', action: 'reload', reasons: ['/usr/local/opt/app/x/y.conf removed (triggers/app.txt:1)'] }]);
});

test('a new unit file with a drop-in of its own restarts nothing; a drop-in added to a unit that was there restarts it', () => {
  const file = (sha256: string) => ({ type: 'file' as const, mode: '0644', sha256 });
  const before = {
    format: 1 as const,
    machine: 'm',
    entries: { '/usr/local/lib/systemd/system/old.service': file('a') },
    packages: { install: [], purge: [] },
  };
  const after = {
    ...before,
    entries: {
      ...before.entries,
      '/usr/local/lib/systemd/system/old.service.d/10.conf': file('b'),
      '/usr/local/lib/systemd/system/new@.service': file('c'),
      '/usr/local/lib/systemd/system/new@.service.d/10.conf': file('d'),
    },
  };
  const plan = reconcile(before, after, () => '');
  assert.deepEqual(
    plan.units.map((u) => `${u.action} ${u.unit}`),
    ['restart old.service'],
  );
});

test('an instance whose unit file is a link to its template reloads as the template says when a file its own drop-in names changes', () => {
  const files = {
    [`${sys}/db@.service`]: '[Service]\nType=notify\nExecReload=/bin/kill -HUP $MAINPID\n',
    [`${sys}/db@main.service`]: { link: 'db@.service' },
    [`${sys}/db@main.service.d/50-cluster.conf`]: '[Service]\nExecStart=/usr/bin/db -c config_file=/usr/local/etc/db/main.conf\n',
    [`${sys}/multi-user.target.wants/db@main.service`]: { link: '../db@main.service' },
    '/usr/local/etc/db/main.conf': 'v1',
  };
  const before = manifest(files);
  const after = manifest({ ...files, '/usr/local/etc/db/main.conf': 'v2' });
  assert.deepEqual(
    reconcile(before.manifest, after.manifest, after.read).units.map((u) => [u.unit, u.action]),
    [['db@main.service', 'reload-or-restart']],
  );
});
