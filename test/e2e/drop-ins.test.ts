// Drop-ins in every form on a real systemd: a prefix drop-in (homecloud-.service.d/) and a top-level service.d/
// apply to every unit they name for systemd, and a change to one restarts exactly the running units the machine's
// tree names that it applies to. After every deploy the machine is checked against its generation.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { assertMachineIsItsGeneration } from '../helpers/invariant.ts';
import { makeRepo, preludeOnlyBase, writeFiles, type FixtureFile } from '../helpers/repo.ts';
import { sandboxCli, testSandbox } from '../helpers/sandbox.ts';

const { box, skip } = testSandbox('dropin');
const sys = 'layers/d/usr/local/lib/systemd/system';
const service = (name: string) => `[Unit]\nDescription=${name}\n[Service]\nExecStart=/bin/sleep infinity\n`;
const enabled = (unit: string, file = unit): Record<string, FixtureFile> => ({ [`${sys}/multi-user.target.wants/${unit}`]: { link: `../${file}` } });
const prefixDropIn = `${sys}/homecloud-.service.d/10-sandbox.conf`;
const repo = makeRepo({
  ...preludeOnlyBase,
  'machines/m/usr/local/opt/initd/layers/10.txt': '+ d\n',
  [`${sys}/homecloud-a.service`]: service('a'),
  [`${sys}/homecloud-b-x.service`]: service('b-x'),
  [`${sys}/homecloud-c@.service`]: service('c %i'),
  // Its own drop-in of the same name shadows the prefix drop-in.
  [`${sys}/homecloud-own.service`]: service('own'),
  [`${sys}/homecloud-own.service.d/10-sandbox.conf`]: '[Service]\nEnvironment=DROPIN=own\n',
  [`${sys}/other-a.service`]: service('other'),
  // Shipped, not enabled: a restart leaves it stopped.
  [`${sys}/homecloud-idle.service`]: service('idle'),
  ...enabled('homecloud-a.service'),
  ...enabled('homecloud-b-x.service'),
  ...enabled('homecloud-c@one.service', 'homecloud-c@.service'),
  ...enabled('homecloud-own.service'),
  ...enabled('other-a.service'),
  [prefixDropIn]: '[Service]\nEnvironment=DROPIN=v1\n',
});
const cli = sandboxCli(box, repo);
const on = (command: string) => box!.ssh('m', command).stdout;
const units = [
  'homecloud-a.service',
  'homecloud-b-x.service',
  'homecloud-c@one.service',
  'homecloud-idle.service',
  'homecloud-own.service',
  'other-a.service',
  'ssh.service',
];
const prefixed = ['homecloud-a.service', 'homecloud-b-x.service', 'homecloud-c@one.service'];

/**
 * Each unit's main process, its Environment= as systemd has loaded it, and what of it the running process has
 * (DROPIN and ALL, from /proc/<pid>/environ): the setting is in effect only once the unit restarted.
 */
function state(): Record<string, { pid: string; environment: string; running: string }> {
  const blocks = on(`systemctl show -p Id -p MainPID -p Environment ${units.join(' ')}`).split('\n\n');
  const shown = blocks.map((block) =>
    Object.fromEntries(block.split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)])),
  );
  const pids = shown.map((fields) => fields.MainPID!);
  const environ = `for pid in ${pids.join(' ')}; do echo "$pid:$({ tr '\\0' '\\n' < /proc/$pid/environ 2>/dev/null | grep -E '^(DROPIN|ALL)=' || true; } | paste -sd' ')"; done`;
  const running = new Map(
    on(environ)
      .split('\n')
      .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1)]),
  );
  return Object.fromEntries(
    shown.map((fields) => [
      fields.Id!,
      { pid: fields.MainPID!, environment: fields.Environment ?? '', running: fields.MainPID === '0' ? '' : running.get(fields.MainPID!)! },
    ]),
  );
}

/** Which units got a new main process. */
function restarted(before: ReturnType<typeof state>, after: ReturnType<typeof state>): string[] {
  return units.filter((unit) => before[unit]!.pid !== after[unit]!.pid);
}

function deploy(context: string) {
  const result = cli(['deploy', 'm']);
  assert.equal(result.status, 0, `${context}: ${result.stdout}${result.stderr}`);
  assertMachineIsItsGeneration(box!, 'm', context);
  return result;
}

test('first deploy: a prefix drop-in applies to every unit of that prefix, template instances too, unless shadowed', { skip }, async () => {
  await box!.up(['m']);
  deploy('first deploy');
  const now = state();
  for (const unit of units) assert.equal(now[unit]!.pid !== '0', unit !== 'homecloud-idle.service', `${unit} runs unless not enabled`);
  for (const unit of prefixed) assert.deepEqual([now[unit]!.environment, now[unit]!.running], ['DROPIN=v1', 'DROPIN=v1'], unit);
  assert.deepEqual([now['homecloud-own.service']!.environment, now['homecloud-own.service']!.running], ['DROPIN=own', 'DROPIN=own']);
  assert.deepEqual([now['other-a.service']!.environment, now['other-a.service']!.running], ['', '']);
});

test('a changed prefix drop-in: plan names it as the reason; deploy restarts every running unit of the prefix, and no other', { skip }, () => {
  writeFiles(repo, { [prefixDropIn]: '[Service]\nEnvironment=DROPIN=v2\n' });
  const before = state();
  const plan = cli(['plan', 'm']);
  assert.equal(plan.status, 0, plan.stderr);
  const reason = '/usr/local/lib/systemd/system/homecloud-.service.d/10-sandbox.conf changed';
  const unitLines = plan.stdout.split('\n').filter((line) => / (restart|reload|reload-or-restart|start|stop): /.test(line));
  assert.deepEqual(
    unitLines,
    ['homecloud-a.service', 'homecloud-b-x.service', 'homecloud-c@*.service', 'homecloud-idle.service'].map((unit) => `  ${unit} restart: ${reason}`),
    plan.stdout,
  );
  assert.deepEqual(state(), before, 'plan changed nothing');
  const result = deploy('prefix drop-in changed');
  assert.match(
    result.stdout,
    /; restart homecloud-a\.service, restart homecloud-b-x\.service, restart homecloud-c@\*\.service, restart homecloud-idle\.service \(/,
  );
  const after = state();
  assert.deepEqual(restarted(before, after), prefixed);
  for (const unit of prefixed) assert.deepEqual([after[unit]!.environment, after[unit]!.running], ['DROPIN=v2', 'DROPIN=v2'], unit);
  assert.deepEqual([after['homecloud-own.service']!.environment, after['homecloud-own.service']!.running], ['DROPIN=own', 'DROPIN=own']);
  assert.equal(on('systemctl is-active homecloud-idle.service || true'), 'inactive', 'a unit that was not running stays stopped');
});

test("a top-level service.d/ restarts every service the tree names, never the machine's own (ssh.service)", { skip }, () => {
  writeFiles(repo, { [`${sys}/service.d/20-all.conf`]: '[Service]\nEnvironment=ALL=1\n' });
  const before = state();
  const plan = cli(['plan', 'm']);
  assert.match(plan.stdout, /^ {2}other-a\.service restart: \/usr\/local\/lib\/systemd\/system\/service\.d\/20-all\.conf added$/m);
  assert.doesNotMatch(plan.stdout, /ssh\.service/);
  deploy('service.d added');
  const after = state();
  assert.deepEqual(
    restarted(before, after),
    units.filter((unit) => unit !== 'ssh.service' && unit !== 'homecloud-idle.service'),
  );
  assert.deepEqual([after['other-a.service']!.environment, after['other-a.service']!.running], ['ALL=1', 'ALL=1']);
  assert.deepEqual([after['homecloud-a.service']!.environment, after['homecloud-a.service']!.running], ['DROPIN=v2 ALL=1', 'DROPIN=v2 ALL=1']);
  // systemd applies it to the machine's own services too, but their processes have it only from their next restart.
  assert.deepEqual([after['ssh.service']!.environment, after['ssh.service']!.running], ['ALL=1', '']);
  assert.ok(on('systemctl show -p DropInPaths --value ssh.service').split(' ').includes('/usr/local/lib/systemd/system/service.d/20-all.conf'));
});

test('removed drop-ins restart the units they applied to', { skip }, () => {
  rmSync(join(repo, prefixDropIn));
  rmSync(join(repo, sys, 'service.d'), { recursive: true });
  const before = state();
  const plan = cli(['plan', 'm']);
  assert.match(
    plan.stdout,
    /^ {2}homecloud-a\.service restart: \/usr\/local\/lib\/systemd\/system\/homecloud-\.service\.d\/10-sandbox\.conf removed; \/usr\/local\/lib\/systemd\/system\/service\.d\/20-all\.conf removed$/m,
  );
  deploy('drop-ins removed');
  const after = state();
  assert.deepEqual(
    restarted(before, after),
    units.filter((unit) => unit !== 'ssh.service' && unit !== 'homecloud-idle.service'),
  );
  for (const unit of [...prefixed, 'other-a.service']) assert.deepEqual([after[unit]!.environment, after[unit]!.running], ['', ''], unit);
  assert.deepEqual([after['homecloud-own.service']!.environment, after['homecloud-own.service']!.running], ['DROPIN=own', 'DROPIN=own']);
});
