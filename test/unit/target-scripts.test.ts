import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { clobberScript } from '../../src/apply/clobber.ts';
import { applyScript } from '../../src/apply/script.ts';
import { lockScript } from '../../src/apply/session.ts';
import type { Manifest, ManifestEntries } from '../../src/build/manifest.ts';
import { probeScript } from '../../src/facts/probe.ts';
import { planDeploy } from '../../src/plan/deploy-plan.ts';

/** The bash homecloud runs on targets passes shellcheck, as generated. */
function shellcheck(script: string): string {
  const result = spawnSync('shellcheck', ['-s', 'bash', '-'], { input: script, encoding: 'utf8' });
  if (result.error) throw new Error(`shellcheck is missing (scripts/setup-host.sh installs it): ${result.error.message}`);
  return result.stdout;
}

const manifest = (entries: ManifestEntries): Manifest => ({ format: 1, machine: 'm', entries, packages: { install: ['jq'], purge: ['less'] } });
const committed = manifest({
  '/usr/local/bin/old': { type: 'file', mode: '0755', sha256: 'c' },
  '/usr/local/lib/systemd/system/a.service': { type: 'file', mode: '0644', sha256: 'x' },
  '/usr/local/lib/systemd/system/c.service': { type: 'file', mode: '0644', sha256: 'y' },
});
const next = manifest({
  '/usr/local/lib/systemd/system/a.service': { type: 'file', mode: '0644', sha256: 'a' },
  '/usr/local/lib/systemd/system/b@.service': { type: 'file', mode: '0644', sha256: 'b' },
  '/usr/local/lib/systemd/system/timers.target.wants/d.timer': { type: 'link', target: '../d.timer' },
  '/usr/local/lib/systemd/system/d.timer': { type: 'file', mode: '0644', sha256: 'd' },
  '/usr/local/etc/a': { type: 'dir', mode: '1755' },
  '/usr/local/etc/a/conf': { type: 'file', mode: '0600', sha256: 'b', secret: true },
});
const read = (path: string) => (path.endsWith('a.service') ? '[Service]\nExecStart=/bin/true\n' : '');

test('the apply script passes shellcheck, with every kind of action and with none', () => {
  const packageWork = { install: ['jq'], purge: ['less'] };
  const hooked = manifest({ ...next.entries, '/usr/local/opt/initd/Makefile': { type: 'file', mode: '0644', sha256: 'm' } });
  const plan = planDeploy({ committed, live: committed.entries, drift: [], pending: false, next: hooked, read, triggers: [], failedUnits: ['a.service'], rsync: true, packageWork });
  assert.ok(plan.units.length > 2, 'the plan acts on units');
  assert.ok(plan.hook && plan.units.some((unit) => unit.wasFailed), 'the plan runs the hook and restarts a failed unit');
  assert.equal(shellcheck(applyScript({ plan, ...packageWork, managedUnits: ['a.service', 'b@*.service'], keep: 5, meta: { date: 'now', commit: "it's" } })), '');
  const tried = planDeploy({ committed, live: committed.entries, drift: [], pending: false, next, read, triggers: [], failedUnits: [], rsync: true, packageWork });
  assert.equal(shellcheck(applyScript({ plan: tried, ...packageWork, managedUnits: ['a.service'], keep: 5, meta: {} })), '');
  const empty = planDeploy({ committed: undefined, live: {}, drift: [], pending: false, next: manifest({}), read, triggers: [], failedUnits: [], rsync: true, packageWork: { install: [], purge: [] } });
  assert.equal(shellcheck(applyScript({ plan: empty, install: [], purge: [], managedUnits: [], keep: 1, meta: {} })), '');
});

test('the lock, the probe and clobber pass shellcheck', () => {
  assert.equal(shellcheck(lockScript('command=deploy started=now host=h user=u', 300, probeScript('abc'))), '');
  assert.equal(shellcheck(probeScript()), '');
  assert.equal(shellcheck(clobberScript(['/usr/local/bin/x'], ['/usr/local/bin'], ['x.service'])), '');
  assert.equal(shellcheck(clobberScript([], [], [])), '');
});
