import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { assertMachineIsItsGeneration } from '../helpers/invariant.ts';
import { makeRepo, writeFiles } from '../helpers/repo.ts';
import { sandboxCli, testSandbox } from '../helpers/sandbox.ts';
import { eventually } from '../helpers/web.ts';

// The snapshots layer on two sandbox machines of the cloud image (their roots are btrfs): a's /srv/data is
// snapshotted every second, kept by KEEP=3 and sent to b; a service uses it. A second declaration, rules, is
// taken once a day: its snapshots are made by hand at chosen times, to check the keep rules exactly.
const { box, skip } = testSandbox('snapshots', 'cloud');
const opt = 'machines/a/usr/local/opt/snapshots';
const demo = '[Unit]\nDescription=Uses /srv/data\n[Service]\nWorkingDirectory=/srv/data\nExecStart=/bin/sleep infinity\n';
const repo = makeRepo({
  'machines/a/usr/local/opt/initd/layers/10.txt': '+ snapshots\n',
  'machines/b/usr/local/opt/initd/layers/10.txt': '+ snapshots\n',
  'inventory.json': '{}',
  [`${opt}/data.conf`]: 'DIR=/srv/data\nEVERY=1s\nKEEP=3\nSEND_TO=b\nUNITS=demo.service\n',
  [`${opt}/rules.conf`]: 'DIR=/srv/rules\nEVERY=1d\nKEEP=2 3h 2d\n',
  'machines/a/etc/systemd/system/demo.service': demo,
  'machines/a/usr/local/opt/initd/links/demo.txt': '/etc/systemd/system/multi-user.target.wants/demo.service ../demo.service\n',
});
const cli = sandboxCli(box, repo);
const on = (machine: string, command: string) => box!.ssh(machine, command);
/** The seconds since the epoch of a snapshot's name (20261202T043120Z). */
const secondsOf = (stamp: string) => Date.parse(stamp.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z')) / 1000;
const snapshotsOf = (machine: string, store: string) =>
  on(machine, `ls -1 ${store} 2>/dev/null | grep -E '^[0-9]{8}T[0-9]{6}Z$' || true`).stdout.split('\n').filter(Boolean);

function deploy(what: string, machines: string[] = []) {
  const result = cli(['deploy', ...machines]);
  assert.equal(result.status, 0, `${what}: ${result.stderr}${result.stdout}`);
  for (const machine of machines.length ? machines : ['a', 'b']) assertMachineIsItsGeneration(box!, machine, what);
  return result;
}

test('a declared path becomes a subvolume; snapshots come every second, KEEP=3 keeps three, and each is sent to b, incrementally', { skip }, async () => {
  await box!.up(['a', 'b']);
  deploy('the first deploy');
  assert.equal(on('a', 'stat -c %i /srv/data').stdout, '256', '/srv/data is a subvolume');
  assert.equal(on('a', 'systemctl is-active demo.service').stdout, 'active');
  await eventually(
    'a has taken five snapshots of data',
    () => Number(on('a', 'journalctl -q -o cat -u homecloud-snapshot@data.service | grep -c "data: snapshot "').stdout) >= 5,
    30,
  );
  // The newest three, and the newest one sent when it is older (the parent of the next send).
  await eventually('three snapshots are kept, four while a send is behind', () => [3, 4].includes(snapshotsOf('a', '/srv/.snapshots/data').length), 10);
  assert.match(on('a', 'journalctl -q -o cat -u homecloud-snapshot@data.service').stdout, /data: pruned \d{8}T\d{6}Z \(KEEP=3\)/);
  // Sent to b (the first sends may come before b lets a in: they are tried again), the later ones
  // incrementally from the one before.
  const log = () => on('a', 'journalctl -q -o cat -u homecloud-snapshot@data.service').stdout;
  await eventually('a snapshot was sent incrementally', () => /data: sent \d{8}T\d{6}Z to b \(incremental from \d{8}T\d{6}Z, \d+ ms\)/.test(log()), 60);
  assert.match(log(), /data: sent \d{8}T\d{6}Z to b \(\d+ ms\)/);
  const received = snapshotsOf('b', '/var/lib/homecloud-received/a/data');
  assert.ok(received.length >= 2, received.join(' '));
  assert.equal(on('b', `btrfs property get -ts /var/lib/homecloud-received/a/data/${received.at(-1)} ro`).stdout, 'ro=true');
  // homecloud snapshots lists them, sent.
  const listed = cli(['snapshots', 'a', 'data', '--json']);
  assert.equal(listed.status, 0, listed.stderr);
  const snapshots = (JSON.parse(listed.stdout) as { snapshots: { name: string; stamp: string; sent: boolean }[] }).snapshots;
  // Three by KEEP=3, and perhaps the newest sent one too (the parent of the next send), listed in order.
  assert.ok(snapshots.length >= 3 && snapshots.length <= 4, JSON.stringify(snapshots));
  assert.deepEqual(
    snapshots.map((s) => s.stamp),
    snapshots.map((s) => s.stamp).sort(),
  );
  assert.ok(snapshots.some((s) => s.sent));
  // b lets a's key in to receive only: no shell.
  assert.notEqual(
    on(
      'a',
      'ssh -i /var/lib/homecloud-snapshots/id_ed25519 -o BatchMode=yes -o UserKnownHostsFile=/usr/local/etc/homecloud/snapshots/known_hosts root@$(grep -o "^[^ ]*" /usr/local/etc/homecloud/snapshots/known_hosts | tail -1) id',
    ).status,
    0,
  );
});

test('the keep rules keep exactly the newest N and the oldest of each of the last hours and days', { skip }, () => {
  const now = Math.floor(Number(on('a', 'date -u +%s').stdout) / 60) * 60 - 60;
  const stamp = (seconds: number) =>
    new Date(seconds * 1000)
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d{3}/, '');
  const ago = [10 * 60, 20 * 60, 70 * 60, 80 * 60, 130 * 60, 200 * 60, 25 * 3600, 26 * 3600, 50 * 3600, 5 * 86400];
  const made = ago.map((seconds) => stamp(now - seconds));
  on(
    'a',
    `systemctl stop homecloud-snapshot@rules.timer; ${made.map((s) => `btrfs -q subvolume snapshot -r /srv/rules /srv/.snapshots/rules/${s}`).join('; ')}`,
  );
  assert.equal(on('a', 'systemctl start homecloud-snapshot@rules.service').status, 0);
  const kept = snapshotsOf('a', '/srv/.snapshots/rules');
  const taken = kept.filter((s) => !made.includes(s));
  // What KEEP=2 3h 2d keeps, by the same rules: the newest two; the oldest of each of the last 3 hours and of the
  // last 2 days (the current one included); the newest always.
  const all = [...made, ...taken].sort();
  const expected = new Set<string>(all.slice(-2));
  const period = (s: string, size: number) => Math.floor(secondsOf(s) / size);
  const current = Math.floor(Number(on('a', 'date -u +%s').stdout));
  for (const [count, size] of [
    [3, 3600],
    [2, 86400],
  ] as const) {
    const seen = new Set<number>();
    for (const s of all) {
      const p = period(s, size);
      if (p > Math.floor(current / size) - count && !seen.has(p)) {
        seen.add(p);
        expected.add(s);
      }
    }
  }
  assert.deepEqual(kept, [...expected].sort());
  on('a', 'systemctl start homecloud-snapshot@rules.timer');
});

test('restore: the units stop, the state before is kept as the undo snapshot, the old content is back, the units run again', { skip }, async () => {
  on('a', 'echo v1 > /srv/data/file');
  const written = Number(on('a', 'date -u +%s').stdout);
  await eventually('a snapshot after v1 was written', () => snapshotsOf('a', '/srv/.snapshots/data').some((s) => secondsOf(s) > written), 10);
  on('a', 'systemctl stop homecloud-snapshot@data.timer');
  const chosen = snapshotsOf('a', '/srv/.snapshots/data').at(-1)!;
  on('a', 'echo v2 > /srv/data/file');
  const pid = on('a', 'systemctl show -p MainPID --value demo.service').stdout;
  const restored = cli(['restore', 'a', 'data', '--at', chosen, '--json']);
  assert.equal(restored.status, 0, restored.stderr);
  const { undo } = JSON.parse(restored.stdout) as { undo: string };
  assert.equal(on('a', 'cat /srv/data/file').stdout, 'v1');
  assert.equal(on('a', `cat /srv/.snapshots/data/${undo}/file`).stdout, 'v2', 'the undo snapshot holds the state before');
  assert.equal(on('a', 'stat -c %i /srv/data').stdout, '256', 'a writable subvolume again');
  assert.equal(on('a', 'touch /srv/data/writable && echo ok').stdout, 'ok');
  assert.equal(on('a', 'systemctl is-active demo.service').stdout, 'active');
  assert.notEqual(on('a', 'systemctl show -p MainPID --value demo.service').stdout, pid, 'demo.service was restarted');
  // Undone.
  const undone = cli(['restore', 'a', 'data', '--at', undo]);
  assert.equal(undone.status, 0, undone.stderr);
  assert.equal(on('a', 'cat /srv/data/file').stdout, 'v2');
  on('a', 'systemctl start homecloud-snapshot@data.timer');
  assertMachineIsItsGeneration(box!, 'a', 'after the restore and its undo');
});

test('removing a declaration stops its timer and keeps its snapshots', { skip }, () => {
  const before = snapshotsOf('a', '/srv/.snapshots/rules');
  rmSync(join(repo, `${opt}/rules.conf`));
  deploy('rules removed', ['a']);
  assert.notEqual(on('a', 'systemctl is-active homecloud-snapshot@rules.timer').stdout, 'active');
  assert.deepEqual(snapshotsOf('a', '/srv/.snapshots/rules'), before);
  assert.equal(on('a', 'stat -c %i /srv/rules').stdout, '256', 'the path is left as it is');
});

test('a path that holds files becomes a subvolume only when the declaration says CONVERT=yes, its files kept', { skip }, () => {
  on('a', 'mkdir -p /srv/full && echo kept > /srv/full/file');
  writeFiles(repo, { [`${opt}/full.conf`]: 'DIR=/srv/full\nEVERY=1h\n' });
  const refused = cli(['deploy', 'a']);
  assert.equal(refused.status, 1, refused.stdout);
  assert.match(refused.stderr, /homecloud-snapshot-subvolume@full\.service/);
  assert.match(refused.stderr, /\/srv\/full holds files and is not a subvolume: set CONVERT=yes/);
  assert.notEqual(on('a', 'stat -c %i /srv/full').stdout, '256');
  writeFiles(repo, { [`${opt}/full.conf`]: 'DIR=/srv/full\nEVERY=1h\nCONVERT=yes\n' });
  deploy('CONVERT=yes', ['a']);
  assert.equal(on('a', 'stat -c %i /srv/full').stdout, '256');
  assert.equal(on('a', 'cat /srv/full/file').stdout, 'kept');
});
