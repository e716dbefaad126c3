// `homecloud status`: one line per machine from one round trip each, on real sandbox machines. What needs
// attention (a failed unit, a hand edit, a reboot required, a machine down) makes exit status 1 and is named
// under its machine, while the others are still shown; pending upgrades alone do not.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import type { StatusJson } from '../../src/report/status.ts';
import { assertMachineIsItsGeneration } from '../helpers/invariant.ts';
import { cliPath, makeRepo, preludeOnlyBase } from '../helpers/repo.ts';
import { sandboxCli, testSandbox } from '../helpers/sandbox.ts';

const { box, skip } = testSandbox('status');
const machines = ['one', 'two', 'three'];
const file = '/usr/local/opt/status/motd.txt';
const repo = makeRepo({
  ...preludeOnlyBase,
  [`layers/s${file}`]: 'hello\n',
  'layers/s/usr/local/lib/systemd/system/status-idle.service': '[Service]\nExecStart=/bin/sleep infinity\n',
  'layers/s/usr/local/lib/systemd/system/multi-user.target.wants/status-idle.service': { link: '../status-idle.service' },
  ...Object.fromEntries(machines.map((machine) => [`machines/${machine}/usr/local/opt/initd/layers/10.txt`, '+ s\n'])),
});
const cli = sandboxCli(box, repo);
const on = (machine: string, command: string) => box!.ssh(machine, command);

/** `status --json`: its exit status and each machine's status by name. */
function status(...names: string[]) {
  const result = cli(['--json', 'status', ...names]);
  const document = JSON.parse(result.stdout) as { machines: StatusJson[] };
  return { status: result.status, stderr: result.stderr, machines: new Map(document.machines.map((m) => [m.machine, m])) };
}

/** Machines with nothing to attend to, reached and read. */
function assertClear(machines: Map<string, StatusJson>, ...names: string[]) {
  for (const name of names) {
    const machine = machines.get(name)!;
    assert.deepEqual(
      [machine.reachable, machine.attention, machine.failedUnits, machine.drift, machine.rebootRequired],
      [true, [], [], [], false],
      `${name}: ${JSON.stringify(machine)}`,
    );
  }
}

/** The lines `status` prints under a machine's row (what needs attention there), up to the next machine's row. */
function linesUnder(text: string, machine: string): string[] {
  const lines = text.split('\n');
  const at = lines.findIndex((line) => line.startsWith(`${machine} `));
  assert.ok(at > 0, `no row for ${machine} in:\n${text}`);
  const after = lines.slice(at + 1);
  const end = after.findIndex((line) => !line.startsWith('  '));
  return (end < 0 ? after : after.slice(0, end)).map((line) => line.trim());
}

test('a machine never deployed is reachable with no generation, and needs no attention', { skip }, async () => {
  await box!.up(machines);
  const read = status();
  assert.equal(read.status, 0, read.stderr);
  assert.deepEqual([...read.machines.keys()], ['one', 'three', 'two']);
  assertClear(read.machines, ...machines);
  for (const machine of read.machines.values()) assert.equal(machine.generation, null);
});

test('all clear after a deploy: exit 0, each machine its generation, when and by whom, uptime, disk and upgrades', { skip }, () => {
  const deploy = cli(['deploy']);
  assert.equal(deploy.status, 0, deploy.stderr + deploy.stdout);
  for (const machine of machines) assertMachineIsItsGeneration(box!, machine, 'the first deploy');
  const read = status();
  assert.equal(read.status, 0, read.stderr);
  assertClear(read.machines, ...machines);
  for (const machine of read.machines.values()) {
    assert.equal(machine.generation?.number, 1);
    assert.ok(Math.abs(Date.parse(machine.generation.date) - Date.now()) < 10 * 60_000, machine.generation.date);
    assert.equal(machine.generation.by, process.env.SUDO_USER ?? process.env.USER ?? 'root');
    assert.ok(machine.uptimeSeconds !== null && machine.uptimeSeconds > 0);
    assert.ok(machine.disk && machine.disk.usedPercent < 90 && machine.disk.availableBytes > 0);
    assert.equal(typeof machine.upgrades, 'number');
    assert.equal(machine.pendingApply, false);
  }
  const text = cli(['status']);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /^MACHINE\s+STATE\s+GENERATION\s+FAILED\s+DRIFT\s+REBOOT\s+UP\s+DISK\s+UPGRADES$/m);
  for (const machine of machines)
    assert.match(
      text.stdout,
      new RegExp(`^${machine}\\s+ok\\s+1, \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d, \\S+\\s+0\\s+0\\s+no\\s+\\S+( \\S+)?\\s+\\d+% \\(.+ free\\)\\s+\\d+$`, 'm'),
    );
  assert.equal(text.stdout.split('\n').filter(Boolean).length, 4, 'a row per machine and nothing under them');
});

test('a failed unit: exit 1, the unit named under its machine, the others ok', { skip }, async () => {
  on('two', 'systemd-run --quiet --unit=status-broken.service /bin/false');
  for (let tries = 0; on('two', 'systemctl is-failed status-broken.service').stdout !== 'failed'; tries++) {
    assert.ok(tries < 100, 'status-broken.service did not fail');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  try {
    const read = status();
    assert.equal(read.status, 1);
    assert.deepEqual(read.machines.get('two')!.failedUnits, ['status-broken.service']);
    assert.deepEqual(read.machines.get('two')!.attention, ['status-broken.service is failed']);
    assertClear(read.machines, 'one', 'three');
    const text = cli(['status']);
    assert.equal(text.status, 1);
    assert.match(text.stdout, /^two\s+ATTENTION\s+1, .*\s1\s+0\s+no\s/m);
    assert.deepEqual(linesUnder(text.stdout, 'two'), ['status-broken.service is failed']);
    assert.deepEqual(linesUnder(text.stdout, 'one'), []);
    // Named machines only.
    assert.equal(status('one', 'three').status, 0);
  } finally {
    on('two', 'systemctl reset-failed status-broken.service');
  }
  assert.equal(status().status, 0);
});

test('a hand edit of a deployed file (drift): exit 1, the path and what changed, as plan says it; a deploy restores it', { skip }, () => {
  on('three', `echo edited >> ${file} && chmod 0600 ${file}`);
  const read = status();
  assert.equal(read.status, 1);
  assert.deepEqual(read.machines.get('three')!.drift, [{ path: file, kinds: ['content', 'mode'], detail: 'content edited, mode 0600 instead of 0644' }]);
  assert.deepEqual(read.machines.get('three')!.attention, [`${file}: content edited, mode 0600 instead of 0644 (changed on the machine; restored by deploy)`]);
  assertClear(read.machines, 'one', 'two');
  const text = cli(['status']);
  assert.match(text.stdout, /^three\s+ATTENTION\s+1, .*\s0\s+1\s+no\s/m);
  assert.deepEqual(linesUnder(text.stdout, 'three'), [`${file}: content edited, mode 0600 instead of 0644 (changed on the machine; restored by deploy)`]);
  // The same drift, in the same words, as plan shows it.
  assert.match(
    cli(['plan', 'three']).stdout,
    new RegExp(`^ {2}! ${file}: content edited, mode 0600 instead of 0644 \\(changed on the machine; restored by deploy\\)$`, 'm'),
  );
  const deploy = cli(['deploy', 'three']);
  assert.equal(deploy.status, 0, deploy.stderr);
  assertMachineIsItsGeneration(box!, 'three', 'the drift restored');
  assert.equal(status().status, 0);
});

test('reboot required: exit 1, by which packages; what the file holds is shown, never run', { skip }, () => {
  const marker = '/tmp/status-ran';
  on('one', `touch /run/reboot-required && printf '%s\\n' linux-image-amd64 libc6 '$(touch ${marker})' libc6 > /run/reboot-required.pkgs`);
  try {
    const read = status();
    assert.equal(read.status, 1);
    const one = read.machines.get('one')!;
    assert.deepEqual([one.rebootRequired, one.rebootPackages], [true, ['linux-image-amd64', 'libc6', `$(touch ${marker})`]]);
    assert.deepEqual(one.attention, [`reboot required by linux-image-amd64, libc6, $(touch ${marker})`]);
    assertClear(read.machines, 'two', 'three');
    assert.equal(on('one', `test -e ${marker} && echo ran || echo not`).stdout, 'not');
    const text = cli(['status']);
    assert.match(text.stdout, /^one\s+ATTENTION\s+1, .*\s0\s+0\s+yes\s/m);
    // Without the list of packages, it is required all the same.
    on('one', 'rm /run/reboot-required.pkgs');
    assert.deepEqual(status().machines.get('one')!.attention, ['reboot required']);
  } finally {
    on('one', 'rm -f /run/reboot-required /run/reboot-required.pkgs');
  }
  assert.equal(status().status, 0);
});

test('--watch needs a terminal: a usage error in a pipe; on one it draws again until Ctrl-C', { skip }, async () => {
  const piped = cli(['status', '--watch']);
  assert.equal(piped.status, 2);
  assert.match(piped.stderr, /--watch needs a terminal/);
  // script(1) gives it a terminal; a Ctrl-C typed there ends it. `exec`: a shell left waiting (dash) would die of the Ctrl-C itself.
  const command = 'exec ' + [process.execPath, cliPath, '-C', repo, '--sandbox', 'status', '--watch', '0.5'].map((word) => `'${word}'`).join(' ');
  const child = spawn('script', ['-qfec', command, '/dev/null'], {
    env: { ...process.env, SHELL: '/bin/sh', HOMECLOUD_SANDBOX: box!.paths.home, NO_COLOR: '1' },
  });
  let screen = '';
  child.stdout.on('data', (chunk: Buffer) => (screen += chunk.toString()));
  const drawn = () => screen.split('\u001b[H\u001b[2J').length - 1;
  const ended = new Promise<number | null>((resolve) => child.on('close', resolve));
  for (let tries = 0; drawn() < 3; tries++) {
    assert.ok(tries < 300, `fewer than 3 screens in 30 s:\n${screen}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.stdin.write('\u0003');
  assert.equal(await ended, 0);
  assert.match(screen, /^two\s+ok\s/m);
  assert.match(screen, /every 0\.5 s; Ctrl-C stops/);
});

test('a machine that is down: exit 1, unreachable with the ssh error, the others shown as they are', { skip }, async () => {
  on('three', 'systemctl poweroff --no-block');
  for (let tries = 0; box!.sandbox.list().find((m) => m.name === 'three')?.state !== 'stopped'; tries++) {
    assert.ok(tries < 600, 'three did not power off');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const read = status();
  assert.equal(read.status, 1);
  const three = read.machines.get('three')!;
  assert.equal(three.reachable, false);
  assert.equal(three.generation, null);
  assert.match(three.error!.message, /cannot reach|ssh|Connection|route/i);
  assert.deepEqual(three.attention, [`unreachable: ${three.error!.message.split('\n')[0]}`]);
  assertClear(read.machines, 'one', 'two');
  assert.equal(read.machines.get('one')!.generation?.number, 1);
  const text = cli(['status']);
  assert.equal(text.status, 1);
  assert.match(text.stdout, /^three\s+unreachable$/m);
  assert.match(linesUnder(text.stdout, 'three')[0]!, /^unreachable: /);
  assert.match(text.stdout, /^one\s+ok\s/m);
  assert.match(text.stdout, /^two\s+ok\s/m);
});
