import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { applyScript, detachedApply } from '../../src/apply/script.ts';
import type { ManifestEntries } from '../../src/build/manifest.ts';
import { probeScript } from '../../src/facts/probe.ts';
import type { Plan } from '../../src/plan/reconcile.ts';

/** The bash homecloud runs on targets passes shellcheck, as generated. */
function shellcheck(script: string): string {
  const result = spawnSync('shellcheck', ['-s', 'bash', '-'], { input: script, encoding: 'utf8' });
  if (result.error) throw new Error(`shellcheck is missing (scripts/setup-host.sh installs it): ${result.error.message}`);
  return result.stdout;
}

const next: ManifestEntries = {
  '/usr/local/lib/systemd/system/a.service': { type: 'file', mode: '0644', sha256: 'a' },
  '/usr/local/etc/a': { type: 'dir', mode: '01755' },
  '/usr/local/etc/a/conf': { type: 'file', mode: '0600', sha256: 'b', secret: true },
};
const plan: Plan = {
  added: ['/usr/local/etc/a', '/usr/local/etc/a/conf'],
  changed: ['/usr/local/lib/systemd/system/a.service'],
  removed: ['/usr/local/bin/old'],
  daemonReload: true,
  units: [
    { unit: 'a.service', action: 'restart', reasons: ['unit changed'] },
    { unit: 'b@*.service', action: 'reload-or-restart', reasons: ['config changed'] },
    { unit: 'c.service', action: 'stop', reasons: ['removed'] },
    { unit: 'd.timer', action: 'start', reasons: ['wanted'] },
  ],
  packages: { install: ['jq'], purge: ['less'] },
} as Plan;

test('the apply script passes shellcheck, with every kind of action and with none', () => {
  const previous: ManifestEntries = { '/usr/local/bin/old': { type: 'file', mode: '0755', sha256: 'c' } };
  assert.equal(shellcheck(applyScript({ plan, next, previous, install: ['jq'], purge: ['less'], keep: 5, meta: { date: 'now', commit: "it's" } })), '');
  const empty = { added: [], changed: [], removed: [], daemonReload: false, units: [], packages: { install: [], purge: [] } } as unknown as Plan;
  assert.equal(shellcheck(applyScript({ plan: empty, next: {}, previous: {}, install: [], purge: [], keep: 1, meta: {} })), '');
});

test('the detached apply runner and the probe pass shellcheck', () => {
  assert.equal(shellcheck(detachedApply), '');
  assert.equal(shellcheck(probeScript), '');
});
