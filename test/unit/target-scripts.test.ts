import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { clobberScript } from '../../src/apply/clobber.ts';
import { applyPhases, applyScript, generationsScript, readApplyOutput, recordStateScript } from '../../src/apply/script.ts';
import { lockScript } from '../../src/apply/session.ts';
import type { Manifest, ManifestEntries } from '../../src/build/manifest.ts';
import { probeScript } from '../../src/facts/probe.ts';
import { planDeploy } from '../../src/plan/deploy-plan.ts';
import { projectRoot } from '../helpers/repo.ts';

/** The bash homecloud runs on targets passes shellcheck, as generated and as each file is written. */
function shellcheck(script: string, ...files: string[]): string {
  const result = spawnSync('shellcheck', ['-s', 'bash', ...(files.length ? files : ['-'])], { input: script, encoding: 'utf8' });
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
  const plan = planDeploy({
    committed,
    live: committed.entries,
    drift: [],
    pending: false,
    next: hooked,
    read,
    triggers: [],
    failedUnits: ['a.service'],
    rsync: true,
    packageWork,
  });
  assert.ok(plan.units.length > 2, 'the plan acts on units');
  assert.ok(plan.hook && plan.units.some((unit) => unit.wasFailed), 'the plan runs the hook and restarts a failed unit');
  assert.equal(
    shellcheck(applyScript({ plan, ...packageWork, managedUnits: ['a.service', 'b@*.service'], keep: 5, meta: { date: 'now', commit: "it's" } })),
    '',
  );
  const tried = planDeploy({
    committed,
    live: committed.entries,
    drift: [],
    pending: false,
    next,
    read,
    triggers: [],
    failedUnits: [],
    rsync: true,
    packageWork,
  });
  assert.equal(shellcheck(applyScript({ plan: tried, ...packageWork, managedUnits: ['a.service'], keep: 5, meta: {} })), '');
  const empty = planDeploy({
    committed: undefined,
    live: {},
    drift: [],
    pending: false,
    next: manifest({}),
    read,
    triggers: [],
    failedUnits: [],
    rsync: true,
    packageWork: { install: [], purge: [] },
  });
  assert.equal(shellcheck(applyScript({ plan: empty, install: [], purge: [], managedUnits: [], keep: 1, meta: {} })), '');
});

test('the lock, the probe, clobber, the state record and the generations listing pass shellcheck', () => {
  assert.equal(shellcheck(lockScript('command=deploy started=now host=h user=u', 300, probeScript('abc'))), '');
  assert.equal(shellcheck(probeScript()), '');
  assert.equal(shellcheck(recordStateScript()), '');
  assert.equal(shellcheck(generationsScript()), '');
  assert.equal(shellcheck(clobberScript(['/usr/local/bin/x'], ['/usr/local/bin'], ['x.service'])), '');
  assert.equal(shellcheck(clobberScript([], [], [])), '');
});

const bashFiles = readdirSync(join(projectRoot, 'src'), { recursive: true, encoding: 'utf8' })
  .filter((file) => file.endsWith('.bash'))
  .map((file) => join(projectRoot, 'src', file));

test('every .bash file passes shellcheck as it is written, and says what it does first', () => {
  assert.ok(bashFiles.length >= 8, bashFiles.join(' '));
  assert.equal(shellcheck('', ...bashFiles), '');
  for (const file of bashFiles) assert.match(readFileSync(file, 'utf8'), /^# [a-z-]+\.bash: /, `${file} starts with what it does`);
});

test('apply.bash enters the phases the CLI knows, in their order', () => {
  const text = readFileSync(join(projectRoot, 'src/apply/apply.bash'), 'utf8');
  assert.deepEqual(
    [...text.matchAll(/^phase (\S+)$/gm)].map((m) => m[1]),
    [...applyPhases],
  );
});

test("the apply's output is read as events: phases, refusals, unhealthy units with their lines, the generation", () => {
  const failed = readApplyOutput(
    'phase check\nphase packages\nphase units\nphase health\nunhealthy a.service\n  x a.service\n  it crashed\nunhealthy b.service\n  b: exit 1\n',
  );
  assert.deepEqual(failed.phases, ['check', 'packages', 'units', 'health']);
  assert.deepEqual(failed.unhealthy, [
    { unit: 'a.service', details: ['  x a.service', '  it crashed'] },
    { unit: 'b.service', details: ['  b: exit 1'] },
  ]);
  assert.equal(failed.generation, undefined);
  const refused = readApplyOutput('phase check\nrefused-by-check /usr/local/opt/initd/checks/nginx: bad config \n');
  assert.deepEqual(refused.refused, { message: '/usr/local/opt/initd/checks/nginx: bad config ', byCheck: true });
  const committed = readApplyOutput('phase commit\ngeneration 12\nHC_ADDRESSES=10.0.0.2 \nstill-failed c.service\n  c failed\nphase nonsense\n');
  assert.equal(committed.generation, 12);
  assert.deepEqual(committed.phases, ['commit']);
  assert.deepEqual(committed.stillFailed, [{ unit: 'c.service', details: ['  c failed'] }]);
});
