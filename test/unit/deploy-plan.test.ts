import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { planFromProbe } from '../../src/apply/deploy.ts';
import { applyScript } from '../../src/apply/script.ts';
import type { Manifest, ManifestEntries } from '../../src/build/manifest.ts';
import type { ProbeOutcome } from '../../src/facts/probe.ts';
import { planDeploy, publicPlan, type DeployPlanInput } from '../../src/plan/deploy-plan.ts';
import { sha256 } from '../../src/util/hash.ts';

/** What the plan decides that the apply used to decide on the target: the bootstrap, the initd hook, restarting a failed unit. */

const sys = '/usr/local/lib/systemd/system';
const makefile = '/usr/local/opt/initd/Makefile';
const hello = `[Service]\nExecStart=/usr/local/bin/hello\nEnvironmentFile=/usr/local/etc/default/hello.env\n`;
const nginx = `[Service]\nExecStart=/usr/sbin/nginx\nExecReload=/usr/sbin/nginx -s reload\nBindReadOnlyPaths=/usr/local/opt/nginx/conf:/etc/nginx\n`;
const texts: Record<string, string> = {
  [`${sys}/hello.service`]: hello,
  [`${sys}/nginx.service`]: nginx,
  [`${sys}/tick@.service`]: '[Service]\nExecStart=/usr/local/bin/tick %i\n',
};
const read = (path: string) => texts[path] ?? '';
const file = (sha256: string) => ({ type: 'file' as const, mode: '0644', sha256 });

/** A manifest of files (hash = the given text), with the unit files above. */
function manifest(files: Record<string, string>, packages: Manifest['packages'] = { install: [], purge: [] }): Manifest {
  const entries: ManifestEntries = {};
  for (const path of Object.keys(texts)) entries[path] = file(path);
  for (const [path, hash] of Object.entries(files)) entries[path] = file(hash);
  return { format: 1, machine: 'm', entries, packages };
}

const base = { '/usr/local/etc/default/hello.env': 'A=1', '/usr/local/opt/nginx/conf/main.nginx': 'v1', '/usr/local/bin/tick': 't1' };
const before = manifest(base);

/** A plan of `next` over `before`, on a machine as the last commit left it, with rsync and nothing to install unless told. */
function plan(next: Manifest, machine: Partial<Pick<DeployPlanInput, 'failedUnits' | 'rsync' | 'packageWork' | 'committed'>> = {}) {
  const committed = 'committed' in machine ? machine.committed : before;
  return planDeploy({
    committed,
    live: committed?.entries ?? {},
    drift: [],
    pending: false,
    next,
    read,
    triggers: [],
    failedUnits: [],
    rsync: true,
    packageWork: { install: [], purge: [] },
    ...machine,
  });
}

test('a unit to restart or reload that is failed now restarts outright, saying it had failed; one that is not keeps its try- action', () => {
  const next = manifest({ ...base, '/usr/local/etc/default/hello.env': 'A=2', '/usr/local/opt/nginx/conf/main.nginx': 'v2' });
  assert.deepEqual(plan(next).units, [
    { unit: 'hello.service', action: 'restart', reasons: ['/usr/local/etc/default/hello.env changed, which hello.service reads'] },
    {
      unit: 'nginx.service',
      action: 'reload-or-restart',
      reasons: ['/usr/local/opt/nginx/conf/main.nginx changed (in /usr/local/opt/nginx/conf), which nginx.service reads'],
    },
  ]);
  assert.deepEqual(plan(next, { failedUnits: ['nginx.service', 'hello.service', 'other.service'] }).units, [
    {
      unit: 'hello.service',
      action: 'restart',
      reasons: ['/usr/local/etc/default/hello.env changed, which hello.service reads', 'it had failed'],
      wasFailed: true,
    },
    {
      unit: 'nginx.service',
      action: 'restart',
      reasons: ['/usr/local/opt/nginx/conf/main.nginx changed (in /usr/local/opt/nginx/conf), which nginx.service reads', 'it had failed'],
      wasFailed: true,
    },
  ]);
});

test('a failed unit the deploy does not act on, starts or stops is not restarted for it; a template pattern names no failed unit', () => {
  const wants = `${sys}/multi-user.target.wants/hello.service`;
  const next = manifest({ ...base, '/usr/local/bin/tick': 't2' });
  next.entries[wants] = { type: 'link', target: '../hello.service' };
  const planned = plan(next, { failedUnits: ['hello.service', 'nginx.service', 'tick@a.service'] });
  assert.deepEqual(
    planned.units.map((u) => [u.unit, u.action, u.wasFailed ?? false]),
    [
      ['hello.service', 'start', false],
      ['tick@*.service', 'restart', false],
    ],
  );
});

test('the initd hook is in the plan whenever the tree has it: added, changed, or present', () => {
  const changeHello = { ...base, '/usr/local/etc/default/hello.env': 'A=2' };
  assert.equal(plan(manifest(changeHello)).hook, null, 'no Makefile, no hook');
  assert.deepEqual(plan(manifest({ ...base, [makefile]: 'm1' })).hook, { path: makefile, reason: 'added' });
  const withHook = manifest({ ...base, [makefile]: 'm1' });
  assert.deepEqual(plan(manifest({ ...base, [makefile]: 'm2' }), { committed: withHook }).hook, { path: makefile, reason: 'changed' });
  assert.deepEqual(plan(manifest({ ...changeHello, [makefile]: 'm1' }), { committed: withHook }).hook, { path: makefile, reason: 'present' });
  assert.deepEqual(
    plan(manifest({ ...base, [makefile]: 'm1' }, { install: ['jq'], purge: [] }), { committed: withHook, packageWork: { install: ['jq'], purge: [] } }).hook,
    { path: makefile, reason: 'present' },
    'packages alone run an apply, and so the hook',
  );
  assert.equal(plan(withHook, { committed: withHook }).hook, null, 'nothing to do: no apply, so no hook');
});

test('bootstrap: rsync, when the machine lacks it and the deploy has something to send; nothing when there is nothing to do', () => {
  const next = manifest({ ...base, '/usr/local/bin/tick': 't2' });
  assert.deepEqual(plan(next, { rsync: false }).bootstrap, ['rsync']);
  assert.deepEqual(plan(next, { rsync: false, committed: undefined }).bootstrap, ['rsync'], 'a first deploy');
  assert.deepEqual(plan(next).bootstrap, []);
  assert.deepEqual(plan(before, { rsync: false }).bootstrap, []);
});

test('plan --json shows the bootstrap, the hook and the failed units restarted; not the file lists', () => {
  const shown = publicPlan(
    plan(manifest({ ...base, '/usr/local/etc/default/hello.env': 'A=2', [makefile]: 'm' }), { rsync: false, failedUnits: ['hello.service'] }),
  );
  assert.equal('operations' in shown, false);
  assert.deepEqual(shown.bootstrap, ['rsync']);
  assert.deepEqual(shown.hook, { path: makefile, reason: 'added' });
  assert.deepEqual(
    shown.units.map((u) => [u.unit, u.action, u.wasFailed, u.reasons.at(-1)]),
    [['hello.service', 'restart', true, 'it had failed']],
  );
});

test('the apply script does what the plan says: the hook only when planned, try- for running units, restart for failed ones', () => {
  const args = { install: [], purge: [], managedUnits: ['hello.service', 'nginx.service'], keep: 3, meta: {} };
  const next = manifest({ ...base, '/usr/local/etc/default/hello.env': 'A=2', '/usr/local/opt/nginx/conf/main.nginx': 'v2', [makefile]: 'm' });
  const script = applyScript({ ...args, plan: plan(next, { failedUnits: ['hello.service'] }) });
  assert.match(script, /^restart=\(\)$/m);
  assert.match(script, /^reload=\('nginx\.service'\)$/m);
  assert.match(script, /^restart_failed=\('hello\.service'\)$/m);
  assert.match(script, /^run_hook=1$/m);
  const without = applyScript({ ...args, plan: plan(manifest({ ...base, '/usr/local/etc/default/hello.env': 'A=2' })) });
  assert.match(without, /^restart=\('hello\.service'\)$/m);
  assert.match(without, /^restart_failed=\(\)$/m);
  assert.match(without, /^run_hook=0$/m);
  // Nothing is decided on the target any more: no test for the Makefile, no list of failed units before the restarts.
  for (const text of [script, without]) {
    assert.doesNotMatch(text, /\[ -f \/usr\/local\/opt\/initd\/Makefile \]/);
    assert.equal(text.split('phase commit')[0]!.includes('--state=failed'), false);
  }
});

const scratch = mkdtempSync(join(tmpdir(), 'homecloud-deploy-plan-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

test('planFromProbe: a machine at its generation with only a package to install runs an apply, hook and bootstrap included', () => {
  // (Unit files would be read from the tree: none here.)
  const next: Manifest = {
    format: 1,
    machine: 'm',
    entries: { [makefile]: file('m'), '/usr/local/bin/tick': file('t1') },
    packages: { install: ['jq'], purge: [] },
  };
  const text = JSON.stringify(next);
  writeFileSync(join(scratch, 'manifest.json'), text);
  const probed: ProbeOutcome = {
    machine: 'm',
    milliseconds: 0,
    manifest: text,
    manifestSha: sha256(Buffer.from(text)),
    packages: new Set(['rsync']),
    rsync: false,
    failedUnits: [],
  };
  const planned = planFromProbe(probed, { tree: scratch, manifest: join(scratch, 'manifest.json') });
  assert.deepEqual([planned.install, planned.plan.bootstrap, planned.plan.hook], [['jq'], ['rsync'], { path: makefile, reason: 'present' }]);
  const installed = planFromProbe({ ...probed, packages: new Set(['jq']) }, { tree: scratch, manifest: join(scratch, 'manifest.json') });
  assert.deepEqual([installed.install, installed.plan.bootstrap, installed.plan.hook], [[], [], null], 'nothing to do');
});
