import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { InventoryEntry } from '../../src/load/inventory.ts';
import { closeConnection, sshArguments } from '../../src/transport/ssh.ts';
import { projectRoot, runCli, writeFiles } from '../helpers/repo.ts';
import { testSandbox } from '../helpers/sandbox.ts';

/** Faults during a deploy: whatever happens before the apply, nothing on the machine changes, and the next deploy succeeds. */
const { box, skip } = testSandbox('faults');
const repo = mkdtempSync(join(tmpdir(), 'homecloud-faults-'));
after(() => rmSync(repo, { recursive: true, force: true }));
cpSync(join(projectRoot, 'examples/homelab'), repo, { recursive: true, verbatimSymlinks: true, filter: (source) => !source.includes('/var') });
const env = () => ({ HOMECLOUD_SANDBOX: box?.paths.home ?? '', NO_COLOR: '1' });
const cli = (args: string[]) => runCli(['-C', repo, '--sandbox', ...args], { env: env() });
const on = (machine: string, command: string) => box!.ssh(machine, command).stdout;
const target = (machine: string) => ({ machine, entry: (JSON.parse(readFileSync(box!.paths.inventory, 'utf8')) as Record<string, InventoryEntry>)[machine]! });

/** Everything a deploy could change on a machine: the file listing, the contents under /usr/local and /etc, unit invocations, the generation. */
const state = (machine: string) =>
  [
    box!.listing(machine, ['/var/lib/homecloud']),
    on(machine, 'find /usr/local /etc -xdev -type f -print0 | sort -z | xargs -0 sha256sum | md5sum'),
    on(machine, 'systemctl show -p InvocationID --value hello.service tick@homecloud.timer; cat /var/lib/homecloud/generations/last'),
  ].join('\n');

/** A change worth a long transfer: a big file of random bytes, and a fact that restarts a service. */
function bigChange(tag: string): void {
  const big = join(repo, 'machines/nas/usr/local/share/big.bin');
  spawnSync('mkdir', ['-p', join(repo, 'machines/nas/usr/local/share')]);
  spawnSync('dd', ['if=/dev/urandom', `of=${big}`, 'bs=1M', 'count=256', 'status=none']);
  writeFiles(repo, { 'facts/nas.json': `{"ENV_GREETING": "${tag}"}` });
}

/** Start a deploy with NDJSON events; `when` runs once the named machine reaches the phase. */
function deployUntil(machine: string, phase: string, when: (child: ReturnType<typeof spawn>) => void) {
  const child = spawn(process.execPath, [join(projectRoot, 'bin/homecloud.cjs'), '-C', repo, '--sandbox', '--json', 'deploy', machine], {
    env: { ...process.env, ...env() },
  });
  let stdout = '';
  let stderr = '';
  let fired = false;
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    if (!fired && stdout.includes(`"event":"phase","machine":"${machine}","phase":"${phase}"`)) {
      fired = true;
      when(child);
    }
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise<{ status: number | null; stdout: string; stderr: string; fired: boolean }>((resolve) =>
    child.on('close', (status) => resolve({ status, stdout, stderr, fired })),
  );
}

test('a first deploy of two machines', { skip }, async () => {
  await box!.up(['nas', 'media']);
  const first = cli(['deploy', 'nas', 'media']);
  assert.equal(first.status, 0, first.stderr);
});

test('the connection cut during the transfer: nothing on the machine changes, and the next deploy succeeds', { skip }, async () => {
  const before = state('nas');
  bigChange('Cut');
  const deploy = await deployUntil('nas', 'transfer', () => {
    // Once the big file is on its way, kill the shared master connection that carries it, as a network failure would end it.
    const receiving = box!.ssh(
      'nas',
      'for _ in $(seq 200); do ls -a /var/lib/homecloud/generations/staging/tree/usr/local/share 2>/dev/null | grep -q "big.bin" && exit 0; sleep 0.05; done; exit 1',
    );
    assert.equal(receiving.status, 0, 'the transfer started');
    const check = spawnSync('ssh', ['-O', 'check', ...sshArguments(target('nas'))], { encoding: 'utf8' });
    const pid = Number(/pid=(\d+)/.exec(check.stderr)?.[1]);
    assert.ok(pid > 0, `a master connection: ${check.stderr}`);
    process.kill(pid, 'SIGKILL');
  });
  assert.ok(deploy.fired);
  assert.equal(deploy.status, 1, deploy.stderr);
  assert.match(deploy.stdout, /"event":"failed","machine":"nas".*transfer failed, nothing was applied/);
  assert.equal(state('nas'), before);
  const next = cli(['deploy', 'nas']);
  assert.equal(next.status, 0, next.stderr);
  assert.equal(on('nas', 'head -1 /usr/local/opt/hello/greeting.txt; stat -c %s /usr/local/share/big.bin'), `Cut from nas!\n${256 * 1024 * 1024}`);
});

test('Ctrl-C during the transfer: nothing on the machine changes, the exit status says so, and the next deploy succeeds', { skip }, async () => {
  const before = state('nas');
  bigChange('Interrupted');
  const deploy = await deployUntil('nas', 'transfer', (child) => child.kill('SIGINT'));
  assert.ok(deploy.fired);
  assert.equal(deploy.status, 130, deploy.stderr);
  assert.match(deploy.stdout, /"event":"interrupted","machine":"nas".*interrupted during the transfer: nothing on the machine changed/);
  assert.match(deploy.stdout, /"event":"summary".*"interrupted":1/);
  assert.equal(state('nas'), before);
  const next = cli(['deploy', 'nas']);
  assert.equal(next.status, 0, next.stderr);
  assert.equal(on('nas', 'head -1 /usr/local/opt/hello/greeting.txt'), 'Interrupted from nas!');
});

test('Ctrl-C during the apply: the apply goes on to its end on the machine, and the next deploy finds nothing to do', { skip }, async () => {
  // A restart that takes a while keeps the apply in its units phase.
  const unit = join(repo, 'layers/hello/usr/local/lib/systemd/system/hello.service');
  const original = readFileSync(unit, 'utf8');
  writeFileSync(unit, original.replace('[Service]', '[Service]\nExecStartPre=/bin/sleep 2'));
  try {
    const deploy = await deployUntil('nas', 'units', (child) => child.kill('SIGINT'));
    assert.ok(deploy.fired);
    assert.equal(deploy.status, 130, deploy.stderr);
    assert.match(deploy.stdout, /"event":"interrupted","machine":"nas".*interrupted during the apply, which goes on to its end/);
    const next = cli(['deploy', 'nas']);
    assert.equal(next.status, 0, next.stderr);
    assert.match(next.stdout, /^nas\s+nothing to do/m);
    assert.equal(on('nas', 'systemctl is-active hello.service; systemctl show -p ExecStartPre --value hello.service | grep -c sleep'), 'active\n1');
  } finally {
    writeFileSync(unit, original);
  }
  assert.equal(cli(['deploy', 'nas']).status, 0);
});

test("the machine's disk full during the transfer: nothing is applied, and once there is room the next deploy succeeds", { skip }, async () => {
  // Fill the machine's file system, then free 64 MiB: the transfer of 256 MiB cannot fit. (Chunks: btrfs estimates free space.)
  const filled = box!.ssh(
    'nas',
    'mkdir -p /var/tmp/filler; i=0; for size in 1G 32M; do while fallocate -l $size /var/tmp/filler/$size.$i 2>/dev/null; do i=$((i + 1)); done; done; rm -f $(ls -d /var/tmp/filler/32M.* | head -2); sync',
  );
  try {
    assert.equal(filled.status, 0, filled.stderr);
    const before = state('nas');
    rmSync(join(repo, 'machines/nas/usr/local/share/big.bin'), { force: true });
    bigChange('Full');
    const deploy = cli(['deploy', 'nas']);
    assert.equal(deploy.status, 1, deploy.stdout);
    assert.match(deploy.stderr, /nas: transfer failed, nothing was applied: the machine's disk is full \(.*No space left on device/);
    assert.match(deploy.stderr, /free space on the machine, then deploy again/);
    assert.equal(state('nas'), before);
  } finally {
    box!.ssh('nas', 'rm -rf /var/tmp/filler');
  }
  const next = cli(['deploy', 'nas']);
  assert.equal(next.status, 0, next.stderr);
  assert.equal(on('nas', 'head -1 /usr/local/opt/hello/greeting.txt'), 'Full from nas!');
});

test('an unreachable machine fails alone: the others deploy, and the summary names it', { skip }, async () => {
  box!.ssh('media', 'systemctl stop ssh.service ssh.socket 2>/dev/null; true');
  closeConnection(target('media'));
  writeFiles(repo, { 'facts/nas.json': '{"ENV_GREETING": "Alone"}', 'machines/media/etc/motd.homecloud': 'changed\n' });
  const deploy = cli(['deploy', 'nas', 'media']);
  assert.equal(deploy.status, 1, deploy.stdout + deploy.stderr);
  assert.match(deploy.stdout, /^nas\s+generation \d+: .*restart hello\.service/m);
  assert.match(deploy.stdout, /^media\s+failed/m);
  assert.match(deploy.stdout, /1 of 2 machines did not deploy \(1 failed\)/);
  assert.match(deploy.stderr, /media: cannot reach 10\.231\.\d+\.\d+: .*Connection refused/);
});
