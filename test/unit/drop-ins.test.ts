import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Manifest, ManifestEntries } from '../../src/build/manifest.ts';
import { reconcile } from '../../src/plan/reconcile.ts';
import { dropInDirectories, dropInOf, unitOf } from '../../src/plan/units.ts';

const sys = '/usr/local/lib/systemd/system';
const etc = '/etc/systemd/system';

/** A manifest of text files (hash = the text) and links. */
function manifest(files: Record<string, string | { link: string }>): { manifest: Manifest; read: (path: string) => string } {
  const entries: ManifestEntries = {};
  for (const [path, content] of Object.entries(files)) {
    entries[path] = typeof content === 'string' ? { type: 'file', mode: '0644', sha256: content } : { type: 'link', target: content.link };
  }
  return { manifest: { format: 1, machine: 'm', entries, packages: { install: [], purge: [] } }, read: (path) => files[path] as string };
}

type Files = Record<string, string | { link: string }>;

/** The unit actions of deploying `next` over `previous`, as `<action> <unit>` lines. */
function actions(previous: Files, next: Files): string[] {
  const after = manifest(next);
  return reconcile(manifest(previous).manifest, after.manifest, after.read).units.map((u) => `${u.action} ${u.unit}`);
}

function without(files: Files, ...paths: string[]): Files {
  const rest = { ...files };
  for (const path of paths) delete rest[path];
  return rest;
}

const service = (extra = '') => `[Service]\nExecStart=/bin/sleep infinity\n${extra}`;
const base: Files = {
  [`${sys}/homecloud-alert.service`]: service(),
  [`${sys}/homecloud-journal-upload.service`]: service(),
  [`${sys}/homecloud-journal-remote@.service`]: service(),
  [`${sys}/homecloud-journal-remote@.socket`]: '[Socket]\nListenStream=19532\n',
  [`${sys}/other-a.service`]: service(),
  [`${sys}/other-a.socket`]: '[Socket]\nListenStream=8080\n',
  [`${sys}/multi-user.target.wants/homecloud-alert.service`]: { link: '../homecloud-alert.service' },
  [`${sys}/sockets.target.wants/homecloud-journal-remote@media.socket`]: { link: '../homecloud-journal-remote@.socket' },
  // A Debian unit homecloud gives a drop-in of its own.
  [`${sys}/ssh.service.d/50-keys.conf`]: '[Service]\nExecStartPre=\n',
  [`${sys}/homecloud-.service.d/10-sandbox.conf`]: '[Service]\nProtectSystem=strict\n',
};

test('drop-in directories a unit reads, as systemd.unit(5) says: its own, its template, each dash prefix, the type', () => {
  assert.deepEqual(dropInDirectories('foo-bar-baz.service'), ['foo-bar-baz.service', 'foo-bar-.service', 'foo-.service', 'service']);
  assert.deepEqual(dropInDirectories('nginx.socket'), ['nginx.socket', 'socket']);
  // An instance: its template's; and per prefix, the prefix's instance and template directories.
  assert.deepEqual(dropInDirectories('foo-bar@x.service'), [
    'foo-bar@x.service',
    'foo-bar@.service',
    'foo-.service',
    'foo-@x.service',
    'foo-@.service',
    'service',
  ]);
  // A template stands for its instances: what every instance reads.
  assert.deepEqual(dropInDirectories('foo-bar@.service'), ['foo-bar@.service', 'foo-.service', 'foo-@.service', 'service']);
  // Slices nest by dashes; the root slice's leading dash is no prefix; a trailing dash is chopped once.
  assert.deepEqual(dropInDirectories('system-getty.slice'), ['system-getty.slice', 'system-.slice', 'slice']);
  assert.deepEqual(dropInDirectories('-.slice'), ['-.slice', 'slice']);
  assert.deepEqual(dropInDirectories('foo-bar-.service'), ['foo-bar-.service', 'foo-.service', 'service']);
  assert.deepEqual(dropInDirectories('var-lib-data.mount'), ['var-lib-data.mount', 'var-lib-.mount', 'var-.mount', 'mount']);
  assert.deepEqual(dropInDirectories('not-a-unit.txt'), []);
});

test('a prefix or type drop-in belongs to no one unit; a drop-in of a unit, template or instance does', () => {
  assert.equal(unitOf(`${sys}/homecloud-.service.d/10-sandbox.conf`), undefined);
  assert.equal(unitOf(`${sys}/service.d/10-all.conf`), undefined);
  assert.equal(unitOf(`${sys}/homecloud-@.service.d/10.conf`), undefined);
  assert.deepEqual(dropInOf(`${sys}/homecloud-.service.d/10-sandbox.conf`), {
    path: `${sys}/homecloud-.service.d/10-sandbox.conf`,
    root: `${sys}/`,
    dir: 'homecloud-.service',
    name: '10-sandbox.conf',
    unit: undefined,
  });
  assert.deepEqual(dropInOf(`${etc}/socket.d/10.conf`), { path: `${etc}/socket.d/10.conf`, root: `${etc}/`, dir: 'socket', name: '10.conf', unit: undefined });
  assert.deepEqual(unitOf(`${sys}/nginx.service.d/10.conf`), { unit: 'nginx.service', dropIn: true });
  assert.deepEqual(unitOf(`${sys}/tick@.service.d/10.conf`), { unit: 'tick@.service', dropIn: true });
  assert.deepEqual(unitOf(`${sys}/tick@a.service.d/10.conf`), { unit: 'tick@a.service', dropIn: true });
  assert.deepEqual(unitOf(`${sys}/-.slice.d/10.conf`), { unit: '-.slice', dropIn: true }, 'the root slice');
  assert.deepEqual(unitOf(`${sys}/homecloud-.service`), { unit: 'homecloud-.service', dropIn: false });
  assert.equal(dropInOf(`${sys}/homecloud-.service.d/README`), undefined);
  assert.equal(dropInOf(`${sys}/things.d/10.conf`), undefined);
  assert.equal(dropInOf('/usr/local/opt/service.d/10.conf'), undefined);
});

test('a prefix drop-in changed restarts every unit of that prefix, template instances too, with the drop-in as the reason; no other', () => {
  const path = `${sys}/homecloud-.service.d/10-sandbox.conf`;
  const after = manifest({ ...base, [path]: '[Service]\nProtectSystem=full\n' });
  const plan = reconcile(manifest(base).manifest, after.manifest, after.read);
  assert.equal(plan.daemonReload, true);
  assert.deepEqual(plan.units, [
    { unit: 'homecloud-alert.service', action: 'restart', reasons: [`${path} changed`] },
    { unit: 'homecloud-journal-remote@*.service', action: 'restart', reasons: [`${path} changed`] },
    { unit: 'homecloud-journal-upload.service', action: 'restart', reasons: [`${path} changed`] },
  ]);
});

test('prefix drop-ins at every prefix length, and those of templates, instances and their prefixes', () => {
  const cases: [string, string[]][] = [
    [`${sys}/homecloud-journal-.service.d/20.conf`, ['restart homecloud-journal-remote@*.service', 'restart homecloud-journal-upload.service']],
    [`${sys}/homecloud-journal-upload.service.d/20.conf`, ['restart homecloud-journal-upload.service']],
    [`${sys}/other-.service.d/20.conf`, ['restart other-a.service']],
    [`${sys}/homecloud-journal-remote@.service.d/20.conf`, ['restart homecloud-journal-remote@*.service']],
    // Instances only: every instance of a template whose name has the prefix.
    [`${sys}/homecloud-@.service.d/20.conf`, ['restart homecloud-journal-remote@*.service']],
    // One instance, by name (the wants link names it); and the instance directory of a prefix.
    [`${sys}/homecloud-journal-remote@media.socket.d/20.conf`, ['restart homecloud-journal-remote@media.socket']],
    [`${sys}/homecloud-journal-@media.socket.d/20.conf`, ['restart homecloud-journal-remote@media.socket']],
    [`${sys}/homecloud-.socket.d/20.conf`, ['restart homecloud-journal-remote@*.socket']],
    // A prefix no unit has.
    [`${sys}/nothing-.service.d/20.conf`, []],
    // In /etc as well.
    [
      `${etc}/homecloud-.service.d/20.conf`,
      ['restart homecloud-alert.service', 'restart homecloud-journal-remote@*.service', 'restart homecloud-journal-upload.service'],
    ],
  ];
  for (const [path, expected] of cases) {
    assert.deepEqual(actions(base, { ...base, [path]: '[Service]\nNice=5\n' }), expected, `${path} added`);
    assert.deepEqual(actions({ ...base, [path]: '[Service]\nNice=5\n' }, { ...base, [path]: '[Service]\nNice=6\n' }), expected, `${path} changed`);
  }
});

test('a top-level service.d/ applies to every service the tree names (a Debian unit with a drop-in of its own too); socket.d/ to every socket', () => {
  assert.deepEqual(actions(base, { ...base, [`${sys}/service.d/10-all.conf`]: '[Unit]\nOnFailure=alert@%N.service\n' }), [
    'restart homecloud-alert.service',
    'restart homecloud-journal-remote@*.service',
    'restart homecloud-journal-upload.service',
    'restart other-a.service',
    'restart ssh.service',
  ]);
  assert.deepEqual(actions(base, { ...base, [`${etc}/socket.d/10-all.conf`]: '[Socket]\nBacklog=64\n' }), [
    'restart homecloud-journal-remote@*.socket',
    'restart other-a.socket',
  ]);
  assert.deepEqual(actions(base, { ...base, [`${sys}/timer.d/10-all.conf`]: '[Timer]\nAccuracySec=1s\n' }), []);
});

test('a same-named drop-in further down the lookup shadows a prefix or type drop-in: changing the shadowed one restarts nothing there', () => {
  const shadowed = { ...base, [`${sys}/homecloud-alert.service.d/10-sandbox.conf`]: '[Service]\nProtectSystem=full\n' };
  assert.deepEqual(actions(shadowed, { ...shadowed, [`${sys}/homecloud-.service.d/10-sandbox.conf`]: '[Service]\nProtectSystem=full\n' }), [
    'restart homecloud-journal-remote@*.service',
    'restart homecloud-journal-upload.service',
  ]);
  // A more specific prefix shadows a shorter one; the type directory comes last.
  const journal = { ...base, [`${sys}/homecloud-journal-.service.d/10-sandbox.conf`]: '[Service]\nProtectSystem=full\n' };
  assert.deepEqual(actions(journal, { ...journal, [`${sys}/homecloud-.service.d/10-sandbox.conf`]: 'x' }), ['restart homecloud-alert.service']);
  assert.deepEqual(actions(base, { ...base, [`${sys}/service.d/10-sandbox.conf`]: 'x' }), ['restart other-a.service', 'restart ssh.service']);
  // /etc wins over /usr/local/lib, even over a more specific directory there.
  const inEtc = { ...base, [`${etc}/homecloud-.service.d/10-sandbox.conf`]: '[Service]\nProtectSystem=full\n' };
  assert.deepEqual(actions(inEtc, { ...inEtc, [`${sys}/homecloud-alert.service.d/10-sandbox.conf`]: 'x' }), []);
  // A mask (a link to /dev/null) shadows too.
  const masked = { ...base, [`${sys}/homecloud-alert.service.d/10-sandbox.conf`]: { link: '/dev/null' } };
  assert.deepEqual(actions(masked, { ...masked, [`${sys}/homecloud-.service.d/10-sandbox.conf`]: 'x' }), [
    'restart homecloud-journal-remote@*.service',
    'restart homecloud-journal-upload.service',
  ]);
  // Adding or removing the shadowing drop-in restarts its unit: what applies to it changed.
  assert.deepEqual(actions(base, shadowed), ['restart homecloud-alert.service']);
  assert.deepEqual(actions(shadowed, base), ['restart homecloud-alert.service']);
});

test('a new unit with a prefix drop-in added with it: the units that were there restart, the new one does not', () => {
  const fresh = without(base, `${sys}/homecloud-.service.d/10-sandbox.conf`);
  const plan = actions(fresh, { ...base, [`${sys}/homecloud-new.service`]: service(), [`${sys}/homecloud-new.service.d/20.conf`]: '[Service]\nNice=1\n' });
  assert.deepEqual(plan, ['restart homecloud-alert.service', 'restart homecloud-journal-remote@*.service', 'restart homecloud-journal-upload.service']);
  // A changed prefix drop-in restarts no unit whose file is new either, nor instances of a new template.
  const next = {
    ...base,
    [`${sys}/homecloud-.service.d/10-sandbox.conf`]: 'x',
    [`${sys}/homecloud-new@.service`]: service(),
    [`${sys}/multi-user.target.wants/homecloud-new@a.service`]: { link: '../homecloud-new@.service' },
  };
  assert.deepEqual(actions(base, next), [
    'restart homecloud-alert.service',
    'restart homecloud-journal-remote@*.service',
    'restart homecloud-journal-upload.service',
    'start homecloud-new@a.service',
  ]);
});

test('a removed prefix drop-in restarts the units it applied to; units removed with it are stopped only', () => {
  const path = `${sys}/homecloud-.service.d/10-sandbox.conf`;
  const after = manifest(without(base, path));
  const plan = reconcile(manifest(base).manifest, after.manifest, after.read);
  assert.equal(plan.daemonReload, true);
  assert.deepEqual(plan.removed, [path]);
  assert.deepEqual(plan.units, [
    { unit: 'homecloud-alert.service', action: 'restart', reasons: [`${path} removed`] },
    { unit: 'homecloud-journal-remote@*.service', action: 'restart', reasons: [`${path} removed`] },
    { unit: 'homecloud-journal-upload.service', action: 'restart', reasons: [`${path} removed`] },
  ]);
  const gone = without(
    base,
    path,
    `${sys}/homecloud-alert.service`,
    `${sys}/multi-user.target.wants/homecloud-alert.service`,
    `${sys}/homecloud-journal-remote@.service`,
  );
  assert.deepEqual(actions(base, gone), ['stop homecloud-alert.service', 'stop homecloud-journal-remote@.service', 'restart homecloud-journal-upload.service']);
  // A unit's own drop-in removed restarts it as well.
  assert.deepEqual(actions(base, without(base, `${sys}/ssh.service.d/50-keys.conf`)), ['restart ssh.service']);
});

test('files a prefix drop-in names are read by every unit it applies to', () => {
  const env = '/usr/local/etc/default/homecloud.env';
  const withEnv = {
    ...base,
    [`${sys}/homecloud-.service.d/20-env.conf`]: `[Service]\nEnvironmentFile=${env}\n`,
    [`${sys}/homecloud-alert.service`]: service('ExecReload=/bin/kill -HUP $MAINPID\n'),
    [env]: 'A=1\n',
  };
  const after = manifest({ ...withEnv, [env]: 'A=2\n' });
  assert.deepEqual(reconcile(manifest(withEnv).manifest, after.manifest, after.read).units, [
    { unit: 'homecloud-alert.service', action: 'reload-or-restart', reasons: [`${env} changed, which homecloud-alert.service reads`] },
    { unit: 'homecloud-journal-remote@*.service', action: 'restart', reasons: [`${env} changed, which homecloud-journal-remote@.service reads`] },
    { unit: 'homecloud-journal-upload.service', action: 'restart', reasons: [`${env} changed, which homecloud-journal-upload.service reads`] },
  ]);
  // Shadowed by a unit's own drop-in of the same name: that unit does not read it.
  const shadowed = { ...withEnv, [`${sys}/homecloud-journal-upload.service.d/20-env.conf`]: '[Service]\nNice=1\n' };
  const next = manifest({ ...shadowed, [env]: 'A=2\n' });
  assert.deepEqual(
    reconcile(manifest(shadowed).manifest, next.manifest, next.read).units.map((u) => u.unit),
    ['homecloud-alert.service', 'homecloud-journal-remote@*.service'],
  );
});
