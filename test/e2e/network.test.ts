import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { assertMachineIsItsGeneration } from '../helpers/invariant.ts';
import { makeRepo, writeFiles } from '../helpers/repo.ts';
import { sandboxCli, testSandbox } from '../helpers/sandbox.ts';
import { eventually } from '../helpers/web.ts';

// The overlay and dns layers on three sandbox machines of the cloud image (wireguard-go: the host's kernel has
// no WireGuard), then a fourth; c runs a container, b declares a service.
const { box, skip } = testSandbox('network', 'cloud');
const layers = (machine: string, ...more: string[]) => ({
  [`machines/${machine}/usr/local/opt/initd/layers/10.txt`]: ['+ overlay', '+ dns', ...more.map((layer) => `+ ${layer}`), ''].join('\n'),
});
const repo = makeRepo({
  ...layers('a'),
  ...layers('b'),
  ...layers('c', 'containers'),
  'inventory.json': '{}',
  'facts/c.json': JSON.stringify({ ENV_CONTAINERS_SUBNET: '10.250.9.0/24' }),
  'machines/c/usr/local/opt/containers/web.conf': 'IMAGE=self\n',
  'machines/b/usr/local/opt/dns/services/www.conf': 'PORT=8080\nTYPE=http\nTXT=path=/ v=1\n',
});
const cli = sandboxCli(box, repo);
const on = (machine: string, command: string) => box!.ssh(machine, command);
/** Everything the CLI printed in this file, searched for private keys at the end. */
const printed: string[] = [];

function deploy(what: string, machines: string[] = []) {
  const result = cli(['deploy', ...machines]);
  printed.push(result.stdout, result.stderr);
  assert.equal(result.status, 0, `${what}: ${result.stderr}${result.stdout}`);
  return result;
}

const built = (machine: string, path: string) => readFileSync(join(repo, 'var/build', machine, 'tree', path), 'utf8');
const overlayAddress = (machine: string) => /^ADDRESS=([0-9.]+)\//m.exec(built(machine, '/usr/local/etc/homecloud/overlay/interface.env'))![1]!;
const overlayAddress6 = (machine: string) => /^ADDRESS6=([0-9a-f:]+)\//m.exec(built(machine, '/usr/local/etc/homecloud/overlay/interface.env'))![1]!;
const containerAddress = () =>
  /CONTAINER_ADDRESS=([0-9.]+)\//.exec(built('c', '/usr/local/lib/systemd/system/homecloud-container@web.service.d/50-container.conf'))![1]!;
const publicKey = (machine: string) => on(machine, 'cat /var/lib/homecloud/public/wireguard').stdout;
/** The IPv4 address a machine resolves a name to (the overlay's names have an IPv6 address too). */
const resolve4 = (machine: string, name: string) => on(machine, `getent ahostsv4 ${name}`).stdout.split(/\s+/)[0] ?? '';
const tcp = (from: string, address: string, port: number) =>
  on(from, `timeout 5 bash -c 'exec 3<>/dev/tcp/${address}/${port}' && echo open || echo closed`).stdout;

/** The peers a machine's interface has (public keys) with a handshake in the last two minutes. */
function freshPeers(machine: string): string[] {
  const now = Number(on(machine, 'date +%s').stdout);
  return on(machine, 'wg show hc-overlay latest-handshakes')
    .stdout.split('\n')
    .filter(Boolean)
    .map((line) => line.split('\t') as [string, string])
    .filter(([, when]) => Number(when) > 0 && now - Number(when) < 120)
    .map(([key]) => key);
}

async function meshConverged(machines: string[]): Promise<void> {
  const keys = new Map(machines.map((machine) => [machine, publicKey(machine)]));
  for (const machine of machines) {
    const wanted = machines.filter((other) => other !== machine).map((other) => keys.get(other)!);
    await eventually(`${machine} has shaken hands with ${wanted.length} peers`, () => wanted.every((key) => freshPeers(machine).includes(key)), 20);
  }
}

test('one deploy makes the mesh: every peer shakes hands with every other, and TCP crosses it', { skip }, async () => {
  await box!.up(['a', 'b', 'c']);
  deploy('the first deploy of three machines');
  for (const machine of ['a', 'b', 'c']) {
    assertMachineIsItsGeneration(box!, machine, 'after the first deploy');
    assert.equal(
      on(machine, 'systemctl is-active homecloud-overlay.service homecloud-overlay-go.service homecloud-dns.service').stdout,
      'active\nactive\nactive',
    );
  }
  await meshConverged(['a', 'b', 'c']);
  assert.equal(tcp('a', overlayAddress('c'), 22), 'open');
  assert.equal(on('a', `timeout 5 bash -c 'exec 3<>/dev/tcp/${overlayAddress6('c')}/22' && echo open`).stdout, 'open');
  const again = deploy('a second deploy');
  assert.match(again.stdout, /nothing to do/i);
  // The operator's view: every machine with its peers, named, and fresh handshakes.
  const view = cli(['ls', '--network', '--json']);
  printed.push(view.stdout, view.stderr);
  assert.equal(view.status, 0, view.stderr);
  const machines = (
    JSON.parse(view.stdout) as { machines: { machine: string; interface: { addresses: string[] }; peers: { machine?: string; ageSeconds: number }[] }[] }
  ).machines;
  for (const machine of machines) {
    assert.ok(machine.interface.addresses.includes(overlayAddress(machine.machine)), JSON.stringify(machine));
    assert.deepEqual(
      machine.peers.map((peer) => peer.machine).sort(),
      ['a', 'b', 'c'].filter((name) => name !== machine.machine),
    );
  }
});

test("a resolves c's container by name and reaches it over the overlay; names resolve inside the container too", { skip }, async () => {
  const web = containerAddress();
  await eventually('web.c.home.arpa resolves on a', () => on('a', 'getent hosts web.c.home.arpa').stdout.split(/\s+/)[0] === web, 20);
  assert.equal(resolve4('a', 'c.home.arpa'), overlayAddress('c'));
  assert.equal(tcp('a', web, 22), 'open');
  // Inside the container, through its host's resolver.
  const inside = on('c', `systemd-run -M web --wait -q -P getent ahostsv4 a.home.arpa`);
  assert.equal(inside.stdout.split(/\s+/)[0], overlayAddress('a'), inside.stderr);
});

test("b's declared service answers an SRV lookup from a", { skip }, () => {
  const srv = on('a', 'resolvectl service _http._tcp b.home.arpa 2>&1; resolvectl query -t SRV www._http._tcp.b.home.arpa 2>&1');
  assert.match(srv.stdout, /b\.home\.arpa:8080/, srv.stdout);
  assert.match(srv.stdout, /www\._http\._tcp\.b\.home\.arpa IN SRV 0 0 8080 b\.home\.arpa/, srv.stdout);
  const txt = on('a', 'resolvectl query -t TXT www._http._tcp.b.home.arpa 2>&1');
  assert.match(txt.stdout, /path=\/.*v=1/s, txt.stdout);
});

test('names and addresses survive a restart of a machine', { skip }, async () => {
  const addresses = () =>
    on('b', 'ip -br address show hc-overlay')
      .stdout.split(/\s+/)
      .filter((word) => word.includes('/') && !word.startsWith('fe80:'))
      .sort();
  const before = { addresses: addresses(), key: publicKey('b') };
  assert.equal(before.addresses.length, 2, before.addresses.join(' '));
  await box!.reboot('b');
  await eventually(
    'b is back on the overlay',
    () => on('b', 'systemctl is-active homecloud-overlay.service homecloud-dns.service').stdout === 'active\nactive',
    60,
  );
  assert.deepEqual(addresses(), before.addresses);
  // Every unit of the layers started at boot: no ordering cycle made systemd drop one.
  assert.equal(on('b', 'journalctl -b -q --no-pager | grep -c "ordering cycle"').stdout, '0');
  assert.equal(publicKey('b'), before.key);
  await meshConverged(['a', 'b', 'c']);
  await eventually('b.home.arpa resolves on a', () => resolve4('a', 'b.home.arpa') === overlayAddress('b'), 20);
  await eventually('web.c.home.arpa resolves on b', () => on('b', 'getent hosts web.c.home.arpa').stdout.split(/\s+/)[0] === containerAddress(), 20);
});

test('c leaves the layers: its peer and names go everywhere; a fourth machine comes in with one deploy', { skip }, async () => {
  const cKey = publicKey('c');
  writeFiles(repo, { 'machines/c/usr/local/opt/initd/layers/10.txt': '+ containers\n' });
  deploy('c removed from the overlay and dns layers');
  for (const machine of ['a', 'b']) {
    assert.doesNotMatch(on(machine, 'wg show hc-overlay peers').stdout, new RegExp(cKey.replace(/[+/]/g, '\\$&')));
    assert.notEqual(on(machine, 'getent hosts web.c.home.arpa').status, 0);
    assertMachineIsItsGeneration(box!, machine, 'after c left');
  }
  assert.notEqual(on('c', 'ip link show hc-overlay').status, 0);

  await box!.up(['d']);
  writeFiles(repo, layers('d'));
  deploy('d added');
  await meshConverged(['a', 'b', 'd']);
  assert.equal(tcp('d', overlayAddress('a'), 22), 'open');
  await eventually('d.home.arpa resolves on a', () => resolve4('a', 'd.home.arpa') === overlayAddress('d'), 20);
  assertMachineIsItsGeneration(box!, 'd', 'after d came in');
});

test('a private key is nowhere but on its own machine: not in the repository, var/, any output or another machine', { skip }, () => {
  const machines = ['a', 'b', 'c', 'd'];
  const keys = new Map(machines.map((machine) => [machine, on(machine, 'cat /var/lib/homecloud-overlay/private.key').stdout]));
  for (const [machine, key] of keys) {
    assert.match(key, /^[A-Za-z0-9+/]{43}=$/, `${machine} has a private key`);
    assert.equal(on(machine, 'stat -c %a /var/lib/homecloud-overlay /var/lib/homecloud-overlay/private.key').stdout, '700\n600');
  }
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const stats = statSync(path, { throwIfNoEntry: false });
      if (stats?.isDirectory()) walk(path);
      else if (stats?.isFile()) files.push(path);
    }
  };
  walk(repo);
  for (const [machine, key] of keys) {
    for (const file of files) assert.ok(!readFileSync(file, 'latin1').includes(key), `${machine}'s private key is in ${file}`);
    for (const output of printed) assert.ok(!output.includes(key), `${machine}'s private key was printed`);
    for (const other of machines.filter((name) => name !== machine)) {
      const found = on(other, `grep -rlsF -- '${key}' /etc /usr/local /var/lib /run /root 2>/dev/null | head -n 3`);
      assert.equal(found.stdout, '', `${machine}'s private key is on ${other}: ${found.stdout}`);
    }
  }
});
