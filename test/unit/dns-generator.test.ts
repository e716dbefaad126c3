import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runGenerator, type FleetFixture } from '../helpers/generator.ts';

// The dns layer's build-time generator, run as the build runs it (FORMAT.md section 7, `# fleet:`): a tree with its
// inputs, an empty output directory laid out like `/`, and a fleet directory made by hand as writeFleet lays it out.
const settingsFile = '/usr/local/etc/default/dns.env';
const services = '/usr/local/opt/dns/services';
const conf = 'out/usr/local/etc/homecloud/dns/dnsmasq.conf';
const standard = 'MACHINE=h1\nZONE=home.arpa\nUPSTREAM=192.0.2.53 2001:db8::53\nTTL=5\n';

/** What h1, h2 and h3 offer after a build with the overlay and containers layers. */
const overlayOffers = (v4: string, v6: string, subnet?: string): [string, string][] => [
  ['overlay-address', v4],
  ['overlay-address6', v6],
  ['overlay-port', '51820'],
  ['overlay-endpoint', ''],
  ...(subnet ? [['subnet', subnet] as [string, string]] : []),
];
const fleet = {
  h1: overlayOffers('10.233.1.1', 'fd68:6f6d:6563:1::1', '10.250.7.0/24'),
  h2: overlayOffers('10.233.1.2', 'fd68:6f6d:6563:1::2', '10.250.8.0/24'),
  // Selects dns without the overlay, or has not built yet: no overlay address.
  h3: [['subnet', '10.250.9.0/24']] as [string, string][],
  h4: [] as [string, string][],
};

/** Run the generator as machine `machine` with these settings (none: no dns.env), service declarations (file name -> content) and fleet (machine -> offers). */
function generate(
  settings: string | undefined,
  declarations: Record<string, string> = {},
  members: Record<string, [string, string][]> = fleet,
  { machine = 'h1', cwdFiles = [] as string[] } = {},
) {
  const files: Record<string, string> = {};
  if (settings !== undefined) files[settingsFile] = settings;
  for (const [name, content] of Object.entries(declarations)) files[`${services}/${name}`] = content;
  const machines: Record<string, FleetFixture> = {};
  for (const [name, offers] of Object.entries(members)) machines[name] = { offers };
  const run = runGenerator({ layer: 'dns', files, machine, fleet: machines, cwdFiles });
  return { ...run, lines: (path: string) => run.read(path).split('\n') };
}

test('dnsmasq.conf: the zone is local, each member with an overlay address answers its subdomain, the rest goes upstream', () => {
  const { result, read, lines } = generate(standard);
  assert.equal(result.status, 0, result.stderr);
  const text = read(conf);
  const all = lines(conf);
  assert.ok(all.includes('local=/home.arpa/'), text);
  assert.ok(all.includes('local-ttl=5'), text);
  assert.ok(all.includes('server=/h2.home.arpa/10.233.1.2'), text);
  assert.deepEqual(
    all.filter((line) => line.startsWith('server=/')),
    ['server=/h2.home.arpa/10.233.1.2'],
    'none for itself, nor for h3 and h4, which offer no overlay address',
  );
  assert.ok(all.includes('host-record=h1.home.arpa,10.233.1.1,fd68:6f6d:6563:1::1,5'), text);
  assert.deepEqual(
    all.filter((line) => line.startsWith('listen-address=')),
    ['listen-address=127.0.0.1', 'listen-address=10.233.1.1', 'listen-address=10.250.7.1'],
  );
  assert.deepEqual(
    all.filter((line) => /^server=[^/]/.test(line)),
    ['server=192.0.2.53', 'server=2001:db8::53'],
  );
  assert.ok(all.includes('no-resolv') && all.includes('bind-dynamic') && all.includes('hostsdir=/run/homecloud-dns/hosts'), text);
  assert.ok(result.stdout.split('\n').includes(`/usr/local/etc/homecloud/dns/dnsmasq.conf\t${settingsFile}`), result.stdout);
  assert.equal(
    readlinkSync(join(generate(standard).root, 'out/usr/local/lib/systemd/system/multi-user.target.wants/homecloud-dns.service')),
    '../homecloud-dns.service',
  );
});

test('upstream loopback addresses are dropped (dnsmasq would ask itself); another zone and TTL; a machine without offers answers no name of its own', () => {
  const { result, lines } = generate('ZONE=lan.example\nUPSTREAM=127.0.0.53 ::1 9.9.9.9 127.0.0.1\nTTL=60\n', {}, fleet, { machine: 'h2' });
  assert.equal(result.status, 0, result.stderr);
  const all = lines(conf);
  assert.deepEqual(
    all.filter((line) => /^server=[^/]/.test(line)),
    ['server=9.9.9.9'],
  );
  assert.ok(all.includes('local=/lan.example/'));
  assert.ok(all.includes('server=/h1.lan.example/10.233.1.1'));
  assert.ok(all.includes('host-record=h2.lan.example,10.233.1.2,fd68:6f6d:6563:1::2,60'));

  const bare = generate('ZONE=home.arpa\nUPSTREAM=\nTTL=5\n', {}, fleet, { machine: 'h4' });
  assert.equal(bare.result.status, 0, bare.result.stderr);
  const lonely = bare.lines(conf);
  assert.ok(!lonely.some((line) => line.startsWith('host-record=')), bare.read(conf));
  assert.deepEqual(
    lonely.filter((line) => line.startsWith('listen-address=')),
    ['listen-address=127.0.0.1'],
  );
  assert.ok(!lonely.some((line) => /^server=[^/]/.test(line)));
  assert.deepEqual(
    lonely.filter((line) => line.startsWith('server=/')),
    ['server=/h1.home.arpa/10.233.1.1', 'server=/h2.home.arpa/10.233.1.2'],
  );
  // Only a subnet: the containers' gateway listens, no overlay address does.
  const containers = generate(standard, {}, fleet, { machine: 'h3' });
  assert.deepEqual(
    containers.lines(conf).filter((line) => line.startsWith('listen-address=')),
    ['listen-address=127.0.0.1', 'listen-address=10.250.9.1'],
  );
});

test('a service declaration becomes DNS-SD records: PTR, SRV at the instance and the type, TXT; HOST= names a container', () => {
  const { result, lines, read } = generate(standard, {
    'web.conf': 'PORT=8080\nTYPE=http\nTXT=path=/\n',
    'db.conf': 'PORT=5432\nHOST=pg\n',
    'dns.conf': 'PORT=53\nPROTOCOL=udp\nTXT=a=1 b=two\n',
  });
  assert.equal(result.status, 0, result.stderr);
  const all = lines(conf);
  const web = [
    'ptr-record=_http._tcp.h1.home.arpa,web._http._tcp.h1.home.arpa',
    'srv-host=web._http._tcp.h1.home.arpa,h1.home.arpa,8080',
    'srv-host=_http._tcp.h1.home.arpa,h1.home.arpa,8080',
    'txt-record=web._http._tcp.h1.home.arpa,"path=/"',
  ];
  const at = all.indexOf(web[0]!);
  assert.ok(at > 0, read(conf));
  assert.deepEqual(all.slice(at, at + 4), web);
  // TYPE defaults to the name; a container of this machine is the target.
  const db = all.filter((line) => line.includes('_db._tcp'));
  assert.deepEqual(db, [
    'ptr-record=_db._tcp.h1.home.arpa,db._db._tcp.h1.home.arpa',
    'srv-host=db._db._tcp.h1.home.arpa,pg.h1.home.arpa,5432',
    'srv-host=_db._tcp.h1.home.arpa,pg.h1.home.arpa,5432',
    'txt-record=db._db._tcp.h1.home.arpa,',
  ]);
  assert.ok(all.includes('srv-host=dns._dns._udp.h1.home.arpa,h1.home.arpa,53'));
  assert.ok(all.includes('txt-record=dns._dns._udp.h1.home.arpa,"a=1","b=two"'));
});

test('settings that cannot work are refused, each naming dns.env', () => {
  const cases: [string, RegExp][] = [
    ['ZONE=Home.arpa\n', /^\/usr\/local\/etc\/default\/dns\.env: ZONE=Home\.arpa is not a domain name/m],
    ['ZONE=home..arpa\n', /^\/usr\/local\/etc\/default\/dns\.env: ZONE=home\.\.arpa is not a domain name/m],
    ['ZONE=-home.arpa\n', /^\/usr\/local\/etc\/default\/dns\.env: ZONE=-home\.arpa is not a domain name/m],
    ['ZONE=home arpa\n', /^\/usr\/local\/etc\/default\/dns\.env: ZONE=home arpa is not a domain name/m],
    ['ZONE=\n', /^\/usr\/local\/etc\/default\/dns\.env: ZONE= is not a domain name/m],
    ['TTL=5s\n', /^\/usr\/local\/etc\/default\/dns\.env: TTL=5s is not a number of seconds/m],
    ['TTL=\n', /^\/usr\/local\/etc\/default\/dns\.env: TTL= is not a number of seconds/m],
    ['TTL=123456\n', /^\/usr\/local\/etc\/default\/dns\.env: TTL=123456 is not a number of seconds/m],
    ['UPSTREAM=1.1.1.1 dns.google\n', /^\/usr\/local\/etc\/default\/dns\.env: UPSTREAM: "dns\.google" is not an IP address/m],
    ['UPSTREAM=1.1.1.256\n', /^\/usr\/local\/etc\/default\/dns\.env: UPSTREAM: "1\.1\.1\.256" is not an IP address/m],
    ['UPSTREAM=$(reboot)\n', /^\/usr\/local\/etc\/default\/dns\.env: UPSTREAM: "\$\(reboot\)" is not an IP address/m],
  ];
  for (const [settings, message] of cases) {
    const { result, root } = generate(`ZONE=home.arpa\nTTL=5\n${settings}`, { 'web.conf': 'PORT=80\n' });
    assert.equal(result.status, 1, `${settings}: ${result.stdout}`);
    assert.match(result.stderr, message);
    assert.equal(result.stdout, '', settings);
    assert.deepEqual(readdirSync(join(root, 'out')), [], settings);
  }
  const machine = generate(standard, {}, fleet, { machine: 'h_1' });
  assert.equal(machine.result.status, 1);
  assert.match(machine.result.stderr, /^\/usr\/local\/etc\/default\/dns\.env: the machine name "h_1" cannot be a DNS label/m);
  // Without dns.env, nothing.
  const none = generate(undefined, { 'web.conf': 'PORT=80\n' });
  assert.equal(none.result.status, 0, none.result.stderr);
  assert.equal(none.result.stdout, '');
  assert.deepEqual(readdirSync(join(none.root, 'out')), []);
});

test('service declarations that cannot work are refused, each naming its file; the others are still checked', () => {
  const cases: [string, string, RegExp][] = [
    ['web.conf', 'TYPE=http\n', /PORT= is not a port \(1 to 65535\)/],
    ['web.conf', 'PORT=0\n', /PORT=0 is not a port/],
    ['web.conf', 'PORT=65536\n', /PORT=65536 is not a port/],
    ['web.conf', 'PORT=http\n', /PORT=http is not a port/],
    ['web.conf', 'PORT=80\nPROTOCOL=sctp\n', /PROTOCOL=sctp is neither tcp nor udp/],
    ['web.conf', 'PORT=80\nPROTOCOL=TCP\n', /PROTOCOL=TCP is neither tcp nor udp/],
    ['web.conf', 'PORT=80\nTYPE=_http\n', /TYPE=_http is not a service type/],
    ['web.conf', 'PORT=80\nHOST=Pg.x\n', /HOST=Pg\.x is not a container name of this machine/],
    ['web.conf', 'PORT=80\nPRIORITY=1\n', /PRIORITY= is not a setting of a service \(PORT, PROTOCOL, TYPE, HOST, TXT\)/],
    ['web.conf', 'PORT=80\nTXT=say="hi"\n', /TXT: "say="hi"" holds a character other than letters, digits and \._\/:=\+-/],
    ['web.conf', "PORT=80\nTXT=name='a b'\n", /TXT: "name='a" holds a character other than/],
    ['web.conf', 'PORT=80\nTXT="path=/a b"\n', /TXT: ""path=\/a" holds a character other than/],
    ['web.conf', 'PORT=80\nTXT=a,b\n', /TXT: "a,b" holds a character other than/],
    ['Web.conf', 'PORT=80\n', /"Web" is not a service name/],
  ];
  for (const [name, content, message] of cases) {
    const { result } = generate(standard, { [name]: content });
    assert.equal(result.status, 1, `${content}: ${result.stdout}`);
    const refusal = result.stderr.split('\n').find((line) => message.test(line));
    assert.ok(refusal?.startsWith(`${services}/${name}: `), `${content}: ${result.stderr}`);
  }
  const both = generate(standard, { 'a.conf': 'PORT=x\n', 'b.conf': 'PORT=80\nFOO=1\n', 'c.conf': 'PORT=80\n' });
  assert.equal(both.result.status, 1);
  assert.deepEqual(
    both.result.stderr
      .trim()
      .split('\n')
      .map((line) => line.split(':')[0]),
    [`${services}/a.conf`, `${services}/b.conf`],
  );
});

test('TXT and UPSTREAM words are data: not expanded as file name patterns', () => {
  // The generator runs in a work directory that holds in/, out/ and fleet/ (and, here, files of other names).
  const star = generate(standard, { 'web.conf': 'PORT=80\nTXT=*\n' }, fleet, { cwdFiles: ['leak'] });
  assert.equal(star.result.status, 1, star.result.stdout);
  assert.match(star.result.stderr, /^\/usr\/local\/opt\/dns\/services\/web\.conf: TXT: "\*" holds a character other than/m);
  const unmatched = generate(standard, { 'web.conf': 'PORT=80\nTXT=path=/x* v=1\n' });
  assert.equal(unmatched.result.status, 1, unmatched.result.stdout);
  assert.match(unmatched.result.stderr, /TXT: "path=\/x\*" holds a character other than/);
  const upstream = generate('ZONE=home.arpa\nTTL=5\nUPSTREAM=9.9.9.9 1.1.1.?\n');
  assert.equal(upstream.result.status, 1, upstream.result.stdout);
  assert.match(upstream.result.stderr, /^\/usr\/local\/etc\/default\/dns\.env: UPSTREAM: "1\.1\.1\.\?" is not an IP address/m);
});

test("resolved asks dnsmasq; the packet filter lets the overlay and this machine's containers ask", () => {
  const { result, read, root } = generate(standard);
  assert.equal(result.status, 0, result.stderr);
  assert.equal(
    read('out/usr/local/lib/systemd/resolved.conf.d/50-homecloud-dns.conf'),
    "# Generated by the dns layer's generator: resolved asks this machine's dnsmasq, which answers the zone and\n# asks the upstream servers for the rest; resolved caches what it is told.\n[Resolve]\nDNS=127.0.0.1\nDomains=~.\nCache=yes\nDNSStubListener=yes\n# Names come from the zone, not from whoever answers on the link.\nLLMNR=no\nMulticastDNS=no\n",
  );
  assert.equal(
    read('out/usr/local/etc/nftables/input.d/50-dns.nft'),
    "# Generated by the dns layer's generator: names for the overlay's machines and this machine's containers.\niifname \"hc-overlay\" meta l4proto { tcp, udp } th dport 53 accept\nip saddr 10.250.7.0/24 ip daddr 10.250.7.1 meta l4proto { tcp, udp } th dport 53 accept\n",
  );
  assert.ok(result.stdout.split('\n').includes(`/usr/local/etc/nftables/input.d/50-dns.nft\t${settingsFile}`));
  assert.ok(result.stdout.split('\n').includes(`/usr/local/lib/systemd/resolved.conf.d/50-homecloud-dns.conf\t${settingsFile}`));
  assert.ok(readdirSync(join(root, 'out/usr/local/etc/nftables/input.d')).length === 1);
  // Without a containers subnet, only the overlay's line.
  const plain = generate(standard, {}, fleet, { machine: 'h4' });
  assert.doesNotMatch(plain.read('out/usr/local/etc/nftables/input.d/50-dns.nft'), /ip saddr/);
});
