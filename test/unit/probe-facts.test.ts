import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
