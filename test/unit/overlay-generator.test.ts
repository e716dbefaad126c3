import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runGenerator, type FleetFixture } from '../helpers/generator.ts';

// The overlay layer's build-time generator, run as the build runs it (FORMAT.md section 7, `# fleet:`): a tree with
// its inputs, an empty output directory laid out like `/`, and a fleet directory made by hand as writeFleet lays it out.
const settingsFile = '/usr/local/etc/default/overlay.env';
const overlayDir = 'out/usr/local/etc/homecloud/overlay';
const units = 'out/usr/local/lib/systemd/system';
const standard = 'NETWORK=10.233.0.0/16\nNETWORK6=fd68:6f6d:6563:1::/64\nPORT=51820\nENDPOINT=\nKEEPALIVE=\nIMPLEMENTATION=kernel\n';

/** A machine of the fleet directory: what writeFleet writes for it, with its public/wireguard, when it published one, as `key`. */
type Member = Omit<FleetFixture, 'public'> & { key?: string };

/** A public key as `wg pubkey` prints it: 32 bytes, base64. */
const publicKey = () => randomBytes(32).toString('base64');

/** Run the generator as machine `machine` with these settings (none: no overlay.env) and fleet. */
function generate(settings: string | undefined, fleet: Record<string, Member> = {}, { machine = 'h1' } = {}) {
  const files: Record<string, string> = settings === undefined ? {} : { [settingsFile]: settings };
  const members: Record<string, FleetFixture> = {};
  for (const [name, { key, ...member }] of Object.entries(fleet)) members[name] = { ...member, public: key === undefined ? {} : { wireguard: `${key}\n` } };
  const run = runGenerator({ layer: 'overlay', files, machine, fleet: members });
  /** Its offers, as the build reads them into the fleet. */
  const offers = run.lines.filter((line) => line.startsWith('offer\t')).map((line) => line.split('\t').slice(1, 3) as [string, string]);
  return { ...run, offers };
}

/** What the generator derives: a machine's IPv4 address in the network, from the first 32 bits of its name's SHA-256. */
function derived4(name: string, network: string, length: number): string {
  const size = 2 ** (32 - length);
  const start = network.split('.').reduce((number, part) => number * 256 + Number(part), 0);
  const base = start - (start % size);
  const number = base + 1 + (parseInt(sha256(name).slice(0, 8), 16) % (size - 2));
  return [24, 16, 8, 0].map((shift) => Math.floor(number / 2 ** shift) % 256).join('.');
}
function derived6(name: string, prefix: string): string {
  const digest = sha256(name);
  return `${prefix}:${digest.slice(0, 4)}:${digest.slice(4, 8)}:${digest.slice(8, 12)}:${digest.slice(12, 16)}`;
}
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** Every file of the output, by path under out/. */
function outputFiles(root: string): Record<string, string> {
  const files: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const name of readdirSync(join(root, dir))) {
      const path = `${dir}/${name}`;
      const stat = statSync(join(root, path), { throwIfNoEntry: false });
      if (stat?.isDirectory()) walk(path);
      else if (stat?.isFile()) files[path] = readFileSync(join(root, path), 'utf8');
    }
  };
  walk('out');
  return files;
}

/** The [Peer] sections of peers.conf, by the machine named in the comment above each. */
function peersOf(text: string): Record<string, string> {
  const peers: Record<string, string> = {};
  for (const section of text.split(/\n(?=# \S+\n\[Peer\])/).slice(1)) peers[/^# (\S+)/.exec(section)![1]!] = section.trim();
  return peers;
}

test('addresses derived from the machine name: stable, in NETWORK (never its first or last), in the /64 of NETWORK6; claimed and offered', () => {
  const { result, lines, offers } = generate(standard, {}, { machine: 'h1' });
  assert.equal(result.status, 0, result.stderr);
  const own4 = derived4('h1', '10.233.0.0', 16);
  const own6 = derived6('h1', 'fd68:6f6d:6563:1');
  assert.match(own4, /^10\.233\.\d+\.\d+$/);
  assert.notEqual(own4, '10.233.0.0');
  assert.notEqual(own4, '10.233.255.255');
  assert.ok(lines.includes(`claim\taddress\t${own4}\t${settingsFile}`), result.stdout);
  assert.ok(lines.includes(`claim\taddress\t${own6}\t${settingsFile}`), result.stdout);
  assert.deepEqual(offers, [
    ['overlay-address', own4],
    ['overlay-address6', own6],
    ['overlay-port', '51820'],
    ['overlay-endpoint', ''],
  ]);
  assert.match(own6, /^fd68:6f6d:6563:1(:[0-9a-f]{4}){4}$/);
  // The same name gives the same addresses on any build; another name, others.
  assert.deepEqual(generate(standard, {}, { machine: 'h1' }).offers, offers);
  const other = generate(standard, {}, { machine: 'h2' }).offers;
  assert.notEqual(other[0]![1], own4);
  assert.notEqual(other[1]![1], own6);
  // A small network, not aligned as written: the address is still inside it.
  const small = generate(standard.replace('10.233.0.0/16', '192.168.77.9/24'), {}, { machine: 'h1' });
  assert.equal(small.result.status, 0, small.result.stderr);
  const address = small.offers.find(([key]) => key === 'overlay-address')![1];
  assert.equal(address, derived4('h1', '192.168.77.0', 24));
  assert.match(address, /^192\.168\.77\.(\d+)$/);
  const last = Number(address.split('.')[3]);
  assert.ok(last >= 1 && last <= 254, address);
  // PORT and ENDPOINT are offered as set.
  const set = generate(standard.replace('PORT=51820', 'PORT=51999').replace('ENDPOINT=', 'ENDPOINT=gw.example.net:4500'));
  assert.deepEqual(set.offers.slice(2), [
    ['overlay-port', '51999'],
    ['overlay-endpoint', 'gw.example.net:4500'],
  ]);
});

test('interface.env, the packet filter, the unit links; the userspace drop-in only for IMPLEMENTATION=userspace', () => {
  const kernel = generate(standard);
  assert.equal(kernel.result.status, 0, kernel.result.stderr);
  const own4 = derived4('h1', '10.233.0.0', 16);
  const own6 = derived6('h1', 'fd68:6f6d:6563:1');
  assert.equal(
    kernel.read(`${overlayDir}/interface.env`),
    `# Generated by the overlay layer's generator: this machine's overlay interface.\nINTERFACE=hc-overlay\nIMPLEMENTATION=kernel\nPORT=51820\nADDRESS=${own4}/16\nADDRESS6=${own6}/64\nROUTES=""\n`,
  );
  assert.match(kernel.read('out/usr/local/etc/nftables/input.d/50-overlay.nft'), /^udp dport 51820 accept$/m);
  assert.equal(readlinkSync(join(kernel.root, `${units}/multi-user.target.wants/homecloud-overlay.service`)), '../homecloud-overlay.service');
  assert.ok(!existsSync(join(kernel.root, `${units}/homecloud-overlay.service.d`)));
  for (const path of ['interface.env', 'peers.conf'])
    assert.ok(kernel.lines.includes(`/usr/local/etc/homecloud/overlay/${path}\t${settingsFile}`), kernel.result.stdout);

  const userspace = generate(standard.replace('IMPLEMENTATION=kernel', 'IMPLEMENTATION=userspace'));
  assert.equal(userspace.result.status, 0, userspace.result.stderr);
  assert.match(userspace.read(`${overlayDir}/interface.env`), /^IMPLEMENTATION=userspace$/m);
  assert.match(
    userspace.read(`${units}/homecloud-overlay.service.d/50-userspace.conf`),
    /^\[Unit\]\nRequires=homecloud-overlay-go\.service\nAfter=homecloud-overlay-go\.service$/m,
  );
  // Without the setting, userspace is the default.
  const unset = generate(standard.replace('IMPLEMENTATION=kernel\n', ''));
  assert.ok(existsSync(join(unset.root, `${units}/homecloud-overlay.service.d/50-userspace.conf`)));
});

test('peers.conf: a [Peer] per member that built and published its key, with its addresses and subnets, endpoint and keepalive', () => {
  const keys = { h2: publicKey(), h3: publicKey(), h4: publicKey(), h5: publicKey() };
  for (const key of Object.values(keys)) assert.match(key, /^[A-Za-z0-9+/]{43}=$/);
  // What h2 offers is what its own build of the generator offers.
  const h2 = generate(standard, {}, { machine: 'h2' }).offers;
  const h2v4 = derived4('h2', '10.233.0.0', 16);
  const h2v6 = derived6('h2', 'fd68:6f6d:6563:1');
  const offers = (name: string, port: string, endpoint: string, ...extra: [string, string][]): [string, string][] => [
    ['overlay-address', derived4(name, '10.233.0.0', 16)],
    ['overlay-address6', derived6(name, 'fd68:6f6d:6563:1')],
    ['overlay-port', port],
    ['overlay-endpoint', endpoint],
    ...extra,
  ];
  const fleet: Record<string, Member> = {
    h1: { offers: offers('h1', '51820', ''), key: publicKey() },
    h2: { address: '192.0.2.2', offers: [...h2, ['subnet', '10.250.8.0/24']], key: keys.h2 },
    h3: { address: '2001:db8::3', offers: offers('h3', '51830', '', ['subnet', '10.250.9.0/24'], ['subnet', '10.250.10.0/24']), key: keys.h3 },
    h4: { offers: offers('h4', '51820', 'gw.example.net:4500'), key: keys.h4 },
    h5: { offers: offers('h5', '51820', 'none'), key: keys.h5 },
    // Built, no key published yet; a key published, never built; a key that is not one.
    h6: { offers: offers('h6', '51820', '') },
    h7: { key: publicKey() },
    h8: { offers: offers('h8', '51820', ''), key: 'not a key; rm -rf /' },
    h9: { offers: offers('h9', '51820', ''), key: `${publicKey().slice(0, 42)}B=` },
  };
  const { result, read, root } = generate(standard.replace('KEEPALIVE=', 'KEEPALIVE=25'), fleet);
  assert.equal(result.status, 0, result.stderr);
  const text = read(`${overlayDir}/peers.conf`);
  assert.match(text, /^# Not yet peers \(not built, or no key published yet\): h6 h7 h8 h9$/m);
  const peers = peersOf(text);
  assert.deepEqual(Object.keys(peers), ['h2', 'h3', 'h4', 'h5'], text);
  assert.equal(
    peers.h2,
    `# h2\n[Peer]\nPublicKey = ${keys.h2}\nAllowedIPs = ${h2v4}/32, ${h2v6}/128, 10.250.8.0/24\nEndpoint = 192.0.2.2:51820\nPersistentKeepalive = 25`,
  );
  assert.match(peers.h3!, /^AllowedIPs = [\d.]+\/32, fd68:6f6d:6563:1:[0-9a-f:]+\/128, 10\.250\.9\.0\/24, 10\.250\.10\.0\/24$/m);
  assert.match(peers.h3!, /^Endpoint = \[2001:db8::3\]:51830$/m, 'an IPv6 address in brackets, with the port the member offered');
  assert.match(peers.h4!, /^Endpoint = gw\.example\.net:4500$/m, 'the endpoint the member offered');
  assert.doesNotMatch(peers.h5!, /Endpoint/, 'a member that cannot be reached');
  assert.match(peers.h5!, /^PersistentKeepalive = 25$/m);
  assert.doesNotMatch(text, /not a key|rm -rf/);
  assert.equal(read(`${overlayDir}/interface.env`).match(/^ROUTES=.*$/m)![0], 'ROUTES="10.250.8.0/24 10.250.9.0/24 10.250.10.0/24"');
  // No private key anywhere: no [Interface] section, and no key but the peers' public ones.
  const files = outputFiles(root);
  for (const [path, content] of Object.entries(files)) {
    assert.doesNotMatch(content, /PrivateKey|\[Interface\]/i, path);
    for (const key of content.match(/[A-Za-z0-9+/]{43}=/g) ?? []) assert.ok(Object.values(keys).includes(key), `${path}: ${key}`);
  }
  assert.doesNotMatch(result.stdout, /PrivateKey|[A-Za-z0-9+/]{43}=/);
});

test('without KEEPALIVE no keepalive; with a lone machine, no peers; without overlay.env, nothing', () => {
  const key = publicKey();
  const { result, read } = generate(standard, { h2: { address: '192.0.2.2', offers: generate(standard, {}, { machine: 'h2' }).offers, key } });
  assert.equal(result.status, 0, result.stderr);
  const peers = peersOf(read(`${overlayDir}/peers.conf`));
  assert.deepEqual(Object.keys(peers), ['h2']);
  assert.doesNotMatch(peers.h2!, /PersistentKeepalive/);
  assert.doesNotMatch(read(`${overlayDir}/peers.conf`), /Not yet peers/);

  const alone = generate(standard, { h1: { offers: generate(standard).offers, key: publicKey() } });
  assert.equal(alone.result.status, 0, alone.result.stderr);
  assert.doesNotMatch(alone.read(`${overlayDir}/peers.conf`), /\[Peer\]|Not yet peers/);

  const none = generate(undefined);
  assert.equal(none.result.status, 0, none.result.stderr);
  assert.equal(none.result.stdout, '');
  assert.deepEqual(readdirSync(join(none.root, 'out')), []);
});

test('settings that cannot work are refused, each naming overlay.env, and nothing is offered', () => {
  const cases: [string, string, RegExp][] = [
    ['NETWORK', '10.233.0.0', /NETWORK=10\.233\.0\.0 is not an IPv4 network of \/8 to \/24/],
    ['NETWORK', '10.256.0.0/16', /NETWORK=10\.256\.0\.0\/16 is not an IPv4 network/],
    ['NETWORK', '', /NETWORK= is not an IPv4 network/],
    ['NETWORK6', 'fd68::/64', /NETWORK6=fd68::\/64 is not a unique local IPv6 \/64/],
    ['NETWORK6', '2001:db8:1:2::/64', /NETWORK6=2001:db8:1:2::\/64 is not a unique local IPv6 \/64/],
    ['NETWORK6', 'fd68:6f6d:6563:1::/48', /NETWORK6=fd68:6f6d:6563:1::\/48 is not/],
    ['PORT', '0', /PORT=0 is not a UDP port/],
    ['PORT', '65536', /PORT=65536 is not a UDP port/],
    ['PORT', 'wg', /PORT=wg is not a UDP port/],
    ['ENDPOINT', 'gw.example.net', /ENDPOINT=gw\.example\.net is neither HOST:PORT/],
    ['ENDPOINT', '2001:db8::1:51820', /ENDPOINT=2001:db8::1:51820 is neither HOST:PORT/],
    ['ENDPOINT', '$(reboot):1', /ENDPOINT=\$\(reboot\):1 is neither/],
    ['KEEPALIVE', '0', /KEEPALIVE=0 is not a number of seconds/],
    ['KEEPALIVE', '25s', /KEEPALIVE=25s is not a number of seconds/],
    ['IMPLEMENTATION', 'boringtun', /IMPLEMENTATION=boringtun is neither kernel nor userspace/],
  ];
  for (const [key, value, message] of cases) {
    const { result, root } = generate(standard.replace(new RegExp(`^${key}=.*$`, 'm'), `${key}=${value}`));
    assert.equal(result.status, 1, `${key}=${value}: ${result.stdout}`);
    const refusal = result.stderr.split('\n').find((line) => message.test(line));
    assert.ok(refusal?.startsWith(`${settingsFile}: ${key}=`), `${key}=${value}: ${result.stderr}`);
    assert.equal(result.stdout, '', `${key}=${value}: nothing offered or claimed`);
    assert.deepEqual(readdirSync(join(root, 'out')), []);
  }
  // Each bad setting is named, in one run.
  const all = generate('NETWORK=x\nNETWORK6=y\nPORT=z\nENDPOINT=w\nKEEPALIVE=v\nIMPLEMENTATION=u\n');
  assert.equal(all.result.status, 1);
  assert.deepEqual(
    all.result.stderr
      .trim()
      .split('\n')
      .map((line) => /^\/usr\/local\/etc\/default\/overlay\.env: ([A-Z0-9]+)=/.exec(line)?.[1]),
    ['NETWORK', 'NETWORK6', 'PORT', 'ENDPOINT', 'KEEPALIVE', 'IMPLEMENTATION'],
  );
  // Valid endpoints are taken.
  for (const endpoint of ['none', 'gw.example.net:4500', '[2001:db8::1]:51820', '192.0.2.1:1']) {
    const { result } = generate(standard.replace('ENDPOINT=', `ENDPOINT=${endpoint}`));
    assert.equal(result.status, 0, `${endpoint}: ${result.stderr}`);
  }
});

test('a NETWORK prefix length outside /8 to /24 is refused, naming overlay.env', () => {
  // The length is checked after a second =~ has replaced BASH_REMATCH (overlay generator, line 41): see the report.
  assert.equal(generate(standard).result.stderr, '', 'a valid NETWORK runs without a word on stderr');
  for (const network of ['10.233.0.0/25', '10.233.0.0/7', '10.233.0.0/31', '10.233.0.0/0', '10.233.0.0/99']) {
    const { result } = generate(standard.replace('NETWORK=10.233.0.0/16', `NETWORK=${network}`));
    assert.equal(result.status, 1, `${network}: ${result.stdout}`);
    assert.match(
      result.stderr,
      new RegExp(`^/usr/local/etc/default/overlay\\.env: NETWORK=${network.replaceAll('.', '\\.')} is not an IPv4 network of /8 to /24`),
    );
    assert.equal(result.stdout, '', network);
  }
  for (const network of ['10.0.0.0/8', '10.233.7.0/24'])
    assert.equal(generate(standard.replace('NETWORK=10.233.0.0/16', `NETWORK=${network}`)).result.status, 0, network);
});
