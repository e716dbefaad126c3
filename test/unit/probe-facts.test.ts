import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { probeFactNames } from '../../src/facts/facts.ts';
import { keyValues, probeScript } from '../../src/facts/probe.ts';
import { checkProbeFacts, parseProbeFact, probeFacts } from '../../src/facts/probe-values.ts';
import { projectRoot } from '../helpers/repo.ts';

/** What the probe printed, and the fact each line makes: recorded on real machines, as pyinfra's tests/facts/ fixtures are. */
const recorded: Record<string, [printed: string, fact: string][]> = {
  ENV_HOSTNAME: [
    ['vm', 'vm'],
    ['nas.home.arpa', 'nas.home.arpa'],
  ],
  ENV_HOSTTYPE: [
    ['x86_64', 'x86_64'],
    ['aarch64', 'aarch64'],
  ],
  ENV_OSTYPE: [['linux-gnu', 'linux-gnu']],
  // os-release lines as Debian 12 and Ubuntu 22.04 write them: some values quoted.
  ENV_ID: [
    ['debian', 'debian'],
    ['"ubuntu"', 'ubuntu'],
    ["'rhel'", 'rhel'],
  ],
  ENV_VERSION_ID: [
    ['"12"', '12'],
    ['"22.04"', '22.04'],
    ['', ''],
  ],
  ENV_VERSION_CODENAME: [
    ['bookworm', 'bookworm'],
    ['', ''],
  ],
  ENV_NPROC: [['2', '2']],
  // /proc/meminfo's MemTotal in kB.
  ENV_MEMBYTES: [
    ['24683548', '25275953152'],
    ['0', '0'],
  ],
  ENV_HOME: [['/root', '/root']],
  ENV_KERNEL: [
    ['6.18.44-fc-v1045', '6.18.44-fc-v1045'],
    ['6.1.0-28-amd64', '6.1.0-28-amd64'],
  ],
  ENV_ARCH: [
    ['amd64', 'amd64'],
    ['arm64', 'arm64'],
  ],
  ENV_SYSTEMD_VERSION: [
    // systemctl show -p Version on a Debian 12 sandbox machine; Ubuntu 22.04.
    ['252.39-1~deb12u2', '252'],
    ['249.11-0ubuntu3.12', '249'],
    // The first line of systemctl --version, on a host whose init is not systemd.
    ['systemd 252 (252.39-1~deb12u2)', '252'],
  ],
  // SSH_CONNECTION: client address and port, server address and port.
  ENV_SSH_PORT: [
    ['10.231.180.1 48212 10.231.180.11 22', '22'],
    ['fe80::1%eth0 50000 fe80::2 2222', '2222'],
    ['', ''],
  ],
  ENV_WIREGUARD_KERNEL: [
    ['yes', 'yes'],
    ['no', 'no'],
  ],
  // The nameserver lines of systemd-resolved's upstream resolv.conf, else of /etc/resolv.conf, without its stubs.
  ENV_NAMESERVERS: [
    ['192.168.1.1', '192.168.1.1'],
    ['10.0.0.1 2001:db8::53 fe80::1%eth0', '10.0.0.1 2001:db8::53 fe80::1%eth0'],
    ['', ''],
  ],
};

test('each probe fact is made from what the probe printed, on recorded output', () => {
  assert.deepEqual(
    Object.keys(recorded),
    probeFacts.map((fact) => fact.name),
    "a recording for every fact, in the probe's order",
  );
  for (const [name, cases] of Object.entries(recorded)) {
    for (const [printed, fact] of cases) {
      assert.equal(parseProbeFact(name, printed), fact, `${name}=${printed}`);
      assert.doesNotThrow(() => checkProbeFacts('m', { [name]: fact }), `${name}=${fact} is what a real machine reports`);
    }
  }
});

test('a fact outside its table, or one whose printed value makes no such fact, is refused', () => {
  assert.equal(parseProbeFact('ENV_OTHER', 'x'), 'x');
  assert.throws(() => checkProbeFacts('m', { ENV_OTHER: 'x' }), /the probed fact "ENV_OTHER" is not one homecloud reads/);
  assert.throws(() => checkProbeFacts('m', { ENV_MEMBYTES: parseProbeFact('ENV_MEMBYTES', '12 kB') }), /ENV_MEMBYTES \("12 kB"\) is not a number/);
  assert.throws(
    () => checkProbeFacts('m', { ENV_SYSTEMD_VERSION: parseProbeFact('ENV_SYSTEMD_VERSION', 'unknown') }),
    /ENV_SYSTEMD_VERSION \(""\) is not a number/,
  );
});

test('the probe reads WireGuard in the kernel and the upstream DNS servers as data, never running what it reads', () => {
  const root = mkdtempSync(join(tmpdir(), 'homecloud-probe-'));
  const probed = () => {
    const result = spawnSync('bash', ['-c', probeScript()], { env: { ...process.env, HOMECLOUD_ROOT: root }, encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    return keyValues(result.stdout.split('\n'));
  };
  const write = (path: string, text: string) => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  };
  try {
    // No resolv.conf at all.
    assert.equal(probed().ENV_NAMESERVERS, '');
    // Behind systemd-resolved's stub only: nothing upstream to tell.
    write('etc/resolv.conf', 'nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch home.arpa\n');
    assert.equal(probed().ENV_NAMESERVERS, '');
    // Comments, blanks and tabs, a comment after an address, no newline at the end; the stubs and what is not a
    // plain address (a zone, a name) left out: a resolv.conf the machine lives with does not fail its build.
    write(
      'etc/resolv.conf',
      '# by hand\n;nameserver 10.9.9.9\n\nnameserver 192.168.1.1\n\tnameserver  fe80::1%eth0  # link\nnameserver dns.example\nnameserver 127.0.0.54\nnameserver fd00::53\nnameserver 9.9.9.9',
    );
    assert.equal(probed().ENV_NAMESERVERS, '192.168.1.1 fd00::53 9.9.9.9');
    // What is read is data: a command in it is neither run nor expanded, nor passed on.
    const marker = join(root, 'ran');
    write('etc/resolv.conf', `nameserver $(touch\${IFS}${marker})\nnameserver \`touch ${marker}\`\nnameserver *\n`);
    assert.equal(probed().ENV_NAMESERVERS, '');
    assert.equal(existsSync(marker), false);
    // The operator's side checks again what a probe says.
    assert.throws(() => checkProbeFacts('m', { ENV_NAMESERVERS: '`touch x`' }), /ENV_NAMESERVERS \(.*\) is not at most 8 IP addresses/);
    // systemd-resolved's upstream list wins over /etc/resolv.conf; at most 8 are taken.
    write('run/systemd/resolve/resolv.conf', Array.from({ length: 10 }, (_, i) => `nameserver 10.0.0.${i + 1}\n`).join(''));
    assert.equal(probed().ENV_NAMESERVERS, Array.from({ length: 8 }, (_, i) => `10.0.0.${i + 1}`).join(' '));
    // Where the dns layer's dnsmasq runs (resolved then names only it), its upstream servers, not its zone's.
    write('usr/local/etc/homecloud/dns/dnsmasq.conf', 'no-resolv\nlisten-address=127.0.0.1\nserver=/b.home.arpa/10.233.0.7\nserver=9.9.9.9\nserver=fd00::53\n');
    assert.equal(probed().ENV_NAMESERVERS, '9.9.9.9 fd00::53');
    // A WireGuard module of the running kernel.
    const kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
    assert.match(probed().ENV_WIREGUARD_KERNEL!, /^(yes|no)$/);
    write(`lib/modules/${kernel}/kernel/drivers/net/wireguard/wireguard.ko.xz`, '');
    assert.equal(probed().ENV_WIREGUARD_KERNEL, 'yes');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the fact list, the probe script and FORMAT.md come from the one table', () => {
  assert.deepEqual(
    probeFactNames,
    probeFacts.map((fact) => fact.name),
  );
  const section = /^## 6\. Facts$([\s\S]*?)^## 7\./m.exec(readFileSync(join(projectRoot, 'docs/FORMAT.md'), 'utf8'))![1]!;
  for (const name of probeFactNames) assert.ok(section.includes(`\`${name}\``), `FORMAT.md section 6 tells what ${name} may hold`);
  // Run here, against an empty scratch root: it prints every fact of the table, in its order, and no other.
  const root = mkdtempSync(join(tmpdir(), 'homecloud-probe-'));
  try {
    const result = spawnSync('bash', ['-c', probeScript()], { env: { ...process.env, HOMECLOUD_ROOT: root }, encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    const printed = Object.keys(keyValues(result.stdout.split('\n'))).filter((key) => key.startsWith('ENV_'));
    assert.deepEqual(printed, probeFactNames);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
