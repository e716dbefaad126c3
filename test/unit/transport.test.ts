// Transports: the local one over a scratch root (what tests reach machines with), and the arguments of the ssh one, hops included.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { LocalTransport } from '../../src/transport/local.ts';
import { controlDir, sshArguments, transportFor } from '../../src/transport/ssh.ts';
import type { Target } from '../../src/transport/transport.ts';
import { shellQuote } from '../../src/util/quote.ts';

const scratch = mkdtempSync(join(tmpdir(), 'homecloud-transport-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function writeTree(root: string, files: Record<string, string>): void {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
}

test('local: a script runs with bash in the root, HOMECLOUD_ROOT naming it, with its input and its lines heard', async () => {
  const root = mkdtempSync(join(scratch, 'root-'));
  const local = new LocalTransport(root);
  const lines: string[] = [];
  const result = await local.run('echo "$HOMECLOUD_ROOT"; pwd; cat; echo oops >&2; exit 3', { input: 'in\n', onLine: (line) => lines.push(line) });
  assert.equal(result.status, 3);
  assert.equal(result.stdout, `${root}\n${root}\nin\n`);
  assert.deepEqual(lines, [root, root, 'in']);
  assert.equal(local.describeFailure(result.stderr), 'oops');
});

test('local: a session talks to a running script, as a lock session does', async () => {
  const local = new LocalTransport(mkdtempSync(join(scratch, 'root-')));
  const session = local.open('echo locked; IFS=" " read -r command bytes; echo "$command $(head -c "$bytes")"; printf rest');
  assert.equal(await session.nextLine(), 'locked');
  session.write('run 5\nhello');
  session.end();
  assert.equal(await session.nextLine(), 'run hello');
  const done = await session.done;
  assert.deepEqual([done.status, done.stdout], [0, 'rest']);
});

test('local: sendTree makes the directory (parents too) an exact copy; unchanged files are hard links to linkDest; add keeps what is there', async () => {
  const root = mkdtempSync(join(scratch, 'root-'));
  const local = new LocalTransport(root);
  const tree = mkdtempSync(join(scratch, 'tree-'));
  writeTree(tree, { 'etc/a.conf': 'a\n', 'usr/local/bin/tool': '#!/bin/sh\n' });
  chmodSync(join(tree, 'usr/local/bin/tool'), 0o755);
  const first = await local.sendTree(tree, '/var/lib/homecloud/generations/1/tree');
  assert.equal(first.status, 0, first.stderr);
  const current = join(root, 'var/lib/homecloud/generations/1/tree');
  assert.equal(readFileSync(join(current, 'etc/a.conf'), 'utf8'), 'a\n');
  assert.equal(statSync(join(current, 'usr/local/bin/tool')).mode & 0o777, 0o755);

  writeTree(tree, { 'etc/b.conf': 'b\n' });
  const staging = join(root, 'var/lib/homecloud/generations/staging/tree');
  writeTree(staging, { 'stale.txt': 'left from an earlier try\n' });
  const second = await local.sendTree(tree, '/var/lib/homecloud/generations/staging/tree', { linkDest: '/var/lib/homecloud/generations/1/tree' });
  assert.equal(second.status, 0, second.stderr);
  assert.equal(statSync(join(staging, 'etc/a.conf')).ino, statSync(join(current, 'etc/a.conf')).ino);
  assert.equal(readFileSync(join(staging, 'etc/b.conf'), 'utf8'), 'b\n');
  assert.ok(!existsSync(join(staging, 'stale.txt')));

  const extra = mkdtempSync(join(scratch, 'extra-'));
  writeTree(extra, { 'manifest.json': '{}\n', 'lists/paths': '' });
  const added = await local.sendTree(extra, '/var/lib/homecloud/generations/staging', { add: true });
  assert.equal(added.status, 0, added.stderr);
  assert.ok(existsSync(join(root, 'var/lib/homecloud/generations/staging/manifest.json')));
  assert.ok(existsSync(join(staging, 'etc/a.conf')));
});

test('local: fetchTree makes a local directory a copy of one on the machine; a missing one says so', async () => {
  const root = mkdtempSync(join(scratch, 'root-'));
  const local = new LocalTransport(root);
  writeTree(join(root, 'var/lib/homecloud/generations/4'), { 'manifest.json': '{}\n', 'tree/etc/x': 'x\n' });
  const into = mkdtempSync(join(scratch, 'fetched-'));
  writeTree(into, { 'old.txt': '' });
  const fetched = await local.fetchTree('/var/lib/homecloud/generations/4', into);
  assert.equal(fetched.status, 0, fetched.stderr);
  assert.equal(readFileSync(join(into, 'tree/etc/x'), 'utf8'), 'x\n');
  assert.ok(!existsSync(join(into, 'old.txt')));
  const missing = await local.fetchTree('/var/lib/homecloud/generations/9', into);
  assert.notEqual(missing.status, 0);
  assert.match(missing.stderr, /No such file or directory/);
});

test('a target names its transport; without one it is ssh', () => {
  const local = new LocalTransport(scratch);
  assert.equal(transportFor({ machine: 'm', entry: { host: 'm', user: 'root', options: [] }, transport: local }), local);
  assert.equal(transportFor({ machine: 'm', entry: { host: 'm', user: 'root', options: [] } }).constructor.name, 'SshTransport');
});

const bastion: Target = { machine: 'gateway', entry: { host: 'gw.example', user: 'admin', options: ['-i', '/keys/gate key', '-p', '2222'] } };
const container: Target = { machine: 'db', entry: { host: '10.0.3.2', user: 'root', options: [] }, via: bastion };

test('ssh: one master connection per machine, homecloud defaults first, the entry options after, the address after --', () => {
  const args = sshArguments(bastion);
  assert.deepEqual(args.slice(0, 2), ['-o', 'ControlMaster=auto']);
  assert.ok(args.includes(`ControlPath=${join(controlDir(), '%C')}`));
  assert.ok(args.includes('BatchMode=yes'));
  assert.deepEqual(args.slice(-6), ['-i', '/keys/gate key', '-p', '2222', '--', 'admin@gw.example']);
  // Without the shared connection (the sandbox's own ssh): the entry's options only.
  assert.deepEqual(sshArguments(bastion, { shared: false }), ['-i', '/keys/gate key', '-p', '2222', '--', 'admin@gw.example']);
});

test('ssh via a hop: the hop runs as its own ssh (its options, its shared connection) under ProxyCommand; the socket names the route', () => {
  const args = sshArguments(container);
  const proxy = args.find((arg) => arg.startsWith('ProxyCommand='));
  assert.ok(proxy, args.join(' '));
  const path = args.find((arg) => arg.startsWith('ControlPath='))!;
  assert.match(path, /\/%C-[0-9a-f]{8}$/);
  // The same address behind another hop is another machine: another socket.
  const elsewhere = sshArguments({ ...container, via: { ...bastion, entry: { ...bastion.entry, host: 'gw2.example' } } });
  assert.notEqual(
    elsewhere.find((arg) => arg.startsWith('ControlPath=')),
    path,
  );

  // ssh runs the ProxyCommand through /bin/sh after expanding its %-tokens: a stand-in ssh on PATH shows the hop's argv as it arrives.
  const bin = mkdtempSync(join(scratch, 'bin-'));
  const seen = join(bin, 'argv');
  writeFileSync(join(bin, 'ssh'), `#!/bin/bash\nprintf '%s\\0' "$@" > ${shellQuote(seen)}\n`);
  chmodSync(join(bin, 'ssh'), 0o755);
  const ssh = spawnSync('/usr/bin/ssh', [...args, 'true'], { env: { ...process.env, PATH: `${bin}:${process.env.PATH}` }, encoding: 'utf8', timeout: 20_000 });
  assert.notEqual(ssh.status, 0);
  const hop = readFileSync(seen, 'utf8').split('\0').slice(0, -1);
  assert.deepEqual(hop, [...sshArguments(bastion).slice(0, -2), '-W', '10.0.3.2:22', '--', 'admin@gw.example']);
});
