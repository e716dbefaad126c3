import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { runCli } from '../helpers/repo.ts';
import { testSandbox } from '../helpers/sandbox.ts';
import { leftovers, machinesInPool } from '../helpers/sandbox-leftovers.ts';

const { box, skip } = testSandbox('sandbox');
const machines = ['s1', 's2', 's3'];
const env = () => ({ HOMECLOUD_SANDBOX: box!.paths.home });

test('three machines boot with systemd running, no failed units, and key-only SSH with verified host keys', { skip }, async () => {
  const { method } = await box!.up(machines);
  assert.equal(method, 'btrfs snapshot');
  for (const name of machines) {
    const state = box!.ssh(name, 'systemctl is-system-running --wait; systemctl --failed --plain --no-legend; hostname');
    assert.equal(state.status, 0, state.stderr);
    assert.deepEqual(state.stdout.split('\n'), ['running', name], `${name}: running, nothing failed`);
  }
  // Host key checking is on: a known_hosts that names another key is refused.
  const tampered = `${box!.paths.home}/known_hosts.tampered`;
  const lines = readFileSync(box!.paths.knownHosts, 'utf8').trim().split('\n');
  const swapped = lines.map((line, i) => `${line.split(' ')[0]} ${lines[(i + 1) % lines.length]!.split(' ').slice(1).join(' ')}`);
  writeFileSync(tampered, swapped.join('\n') + '\n');
  const refused = box!.ssh('s1', 'true', ['-o', `UserKnownHostsFile=${tampered}`]);
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /host key/i);
  // And only keys: password login is not offered.
  const password = spawnSync(
    'ssh',
    [
      '-o',
      'BatchMode=yes',
      '-o',
      'PubkeyAuthentication=no',
      '-o',
      `UserKnownHostsFile=${box!.paths.knownHosts}`,
      '-o',
      'StrictHostKeyChecking=yes',
      `root@${box!.sandbox.inventory().s1!.host}`,
      'true',
    ],
    { encoding: 'utf8' },
  );
  assert.notEqual(password.status, 0);
  assert.match(password.stderr, /Permission denied \(publickey\)/);
});

test('the CLI lists, reaches and reads the machines; the inventory names them', { skip }, async () => {
  const ls = runCli(['--json', 'sandbox', 'ls'], { env: env() });
  assert.equal(ls.status, 0, ls.stderr);
  const listed = JSON.parse(ls.stdout) as { machines: { name: string; state: string; address: string }[] };
  assert.deepEqual(
    listed.machines.map((m) => [m.name, m.state]),
    machines.map((m) => [m, 'running']),
  );
  const hostname = runCli(['sandbox', 'ssh', 's2', '--', 'hostname'], { env: env() });
  assert.equal(hostname.stdout.trim(), 's2');
  const logs = runCli(['sandbox', 'logs', 's3', '-n', '50'], { env: env() });
  assert.equal(logs.status, 0, logs.stderr);
  assert.match(logs.stdout, /Startup finished|Reached target/);
  const inventory = JSON.parse(readFileSync(box!.paths.inventory, 'utf8')) as Record<string, { host: string; options: string[] }>;
  assert.deepEqual(Object.keys(inventory).sort(), machines);
  assert.equal(inventory.s1!.host, listed.machines[0]!.address);
  assert.ok(inventory.s1!.options.includes('StrictHostKeyChecking=yes'));
});

test('reboot shuts a machine down cleanly and boots it on its own disk: its files stay', { skip }, () => {
  box!.ssh('s2', 'echo kept > /root/kept');
  const rebooted = runCli(['--json', 'sandbox', 'reboot', 's2'], { env: env() });
  assert.equal(rebooted.status, 0, rebooted.stderr);
  const { shutdownMilliseconds } = JSON.parse(rebooted.stdout) as { shutdownMilliseconds: number };
  assert.ok(shutdownMilliseconds < 60_000, `the shutdown took ${shutdownMilliseconds} ms`);
  assert.equal(box!.ssh('s2', 'cat /root/kept; systemctl is-system-running --wait').stdout, 'kept\nrunning');
  assert.equal(box!.sandbox.list().find((m) => m.name === 's2')?.state, 'running');
});

test('a machine whose nspawn is killed from outside is listed as stopped, and down cleans it up', { skip }, async () => {
  const state = JSON.parse(readFileSync(box!.paths.state, 'utf8')) as { machines: Record<string, { pid: number }> };
  process.kill(state.machines.s3!.pid, 'SIGKILL');
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && box!.sandbox.list().find((m) => m.name === 's3')?.state !== 'stopped') await new Promise((r) => setTimeout(r, 50));
  assert.equal(box!.sandbox.list().find((m) => m.name === 's3')?.state, 'stopped');
  const down = runCli(['sandbox', 'down', 's3'], { env: env() });
  assert.equal(down.status, 0, down.stderr);
  assert.deepEqual(
    box!.sandbox.list().map((m) => m.name),
    ['s1', 's2'],
  );
  await box!.reset('s2');
  assert.equal(box!.ssh('s2', 'systemctl is-system-running --wait').stdout, 'running');
});

test(
  'down --all leaves no process, cgroup, mount, loop device, bridge, veth or machine directory behind (subvolumes made inside a machine too), and is idempotent',
  { skip },
  () => {
    // What a booted machine with containers has: subvolumes inside its root (/var/lib/machines, a container's clone in it).
    const root = box!.paths.machineDir('s1');
    for (const dir of [`${root}/var/lib/nested`, `${root}/var/lib/nested/inner`])
      assert.equal(spawnSync('btrfs', ['-q', 'subvolume', 'create', dir]).status, 0, dir);
    writeFileSync(`${root}/var/lib/nested/inner/state`, 'kept by a container\n');
    const first = runCli(['sandbox', 'down', '--all'], { env: env() });
    assert.equal(first.status, 0, first.stderr);
    assert.deepEqual(leftovers(box!, machines), { processes: [], cgroups: [], mounts: [], loops: '', bridge: false, veths: [] });
    assert.deepEqual(machinesInPool(box!), []);
    const again = runCli(['sandbox', 'down', '--all'], { env: env() });
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /no sandbox machines/);
  },
);

test('without root, sandbox commands say so and how to fix it', { skip }, () => {
  const run = spawnSync(process.execPath, [`${process.cwd()}/bin/homecloud.cjs`, 'sandbox', 'up', 'x'], {
    encoding: 'utf8',
    uid: 65534,
    gid: 65534,
    env: { ...process.env, ...env() },
  });
  assert.equal(run.status, 2);
  assert.match(run.stderr, /need root/);
  assert.match(run.stderr, /sudo homecloud sandbox up/);
});

test('missing host tools are named with the command that installs them', { skip }, () => {
  const run = spawnSync(process.execPath, [`${process.cwd()}/bin/homecloud.cjs`, 'sandbox', 'up', 'x'], {
    encoding: 'utf8',
    env: { ...process.env, ...env(), PATH: '/nonexistent' },
  });
  assert.equal(run.status, 2);
  assert.match(run.stderr, /missing host tools for sandbox machines: systemd-container, debootstrap, btrfs-progs, iproute2, openssh-client/);
  assert.match(run.stderr, /apt-get install systemd-container debootstrap btrfs-progs iproute2 openssh-client/);
});
