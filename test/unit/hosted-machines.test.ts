// A generator's claim and machine lines (FORMAT.md section 7): values unique in the whole repository, and
// machines a machine hosts (containers), which are reached through their host (section 8).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Builder } from '../../src/build/builder.ts';
import { acrossBuiltMachines } from '../../src/cli/machines.ts';
import { HomecloudError } from '../../src/load/errors.ts';
import { readGeneratorLines } from '../../src/build/generate.ts';
import { hostedMachines, hostsWithin, isIpAddress } from '../../src/load/hosted.ts';
import { identityOptions } from '../../src/load/inventory.ts';
import { inventoryEntry, loadModel, reachProblem, targetOf } from '../../src/load/model.ts';
import { learnHostKeys, publicKeyIn } from '../../src/transport/host-key.ts';
import { LocalTransport } from '../../src/transport/local.ts';
import { sshArguments } from '../../src/transport/ssh.ts';
import type { Target } from '../../src/transport/transport.ts';
import { shellQuote } from '../../src/util/quote.ts';
import { build, makeRepo, preludeOnlyBase, repoPaths, writeFiles, type FixtureFile } from '../helpers/repo.ts';

const opt = 'usr/local/opt/containers';
/** Per /usr/local/opt/containers/<name>.conf: claims its ADDRESS, and with HOSTED=yes makes the machine <name> there. */
const generator: FixtureFile = {
  mode: 0o755,
  content: `#!/bin/bash
# inputs: /usr/local/opt/containers/*.conf
set -euo pipefail
for conf in "$1"/usr/local/opt/containers/*.conf; do
  [[ -e $conf ]] || continue
  name=\${conf##*/}; name=\${name%.conf}
  declaration=/usr/local/opt/containers/$name.conf
  source "$conf"
  printf 'claim\\taddress\\t%s\\t%s\\n' "$ADDRESS" "$declaration"
  if [[ \${HOSTED:-} == yes ]]; then printf 'machine\\t%s\\t%s\\t%s\\t%s\\n' "\${NAME:-$name}" "$ADDRESS" "/var/lib/machines/$name/etc/ssh/ssh_host_ed25519_key.pub" "$declaration"; fi
done
`,
};

/** h1 (layers ct and x) and h2 (layer ct): the generator is in ct; a.conf is x's, b.conf is h2's own. */
function repo(files: Record<string, FixtureFile> = {}) {
  return makeRepo({
    ...preludeOnlyBase,
    'layers/ct/usr/local/opt/initd/generators/containers': generator,
    'layers/x/etc/x': 'x\n',
    'machines/h1/usr/local/opt/initd/layers/10.txt': '+ ct\n+ x\n',
    'machines/h2/usr/local/opt/initd/layers/10.txt': '+ ct\n',
    [`layers/x/${opt}/a.conf`]: 'ADDRESS=10.250.3.7\n',
    [`machines/h2/${opt}/b.conf`]: 'ADDRESS=10.250.3.7\n',
    ...files,
  });
}

const statuses = async (root: string, machines?: string[]) => Object.fromEntries((await build(root, machines)).machines.map((m) => [m.machine, m.status]));

test('two declarations claiming one address fail both machines, naming both machines, declarations and files; every build, until one changes', async () => {
  const root = repo();
  const report = await build(root);
  const expected =
    'address 10.250.3.7 is claimed by /usr/local/opt/containers/a.conf of machine h1 (layers/x/usr/local/opt/containers/a.conf) and by /usr/local/opt/containers/b.conf of machine h2 (machines/h2/usr/local/opt/containers/b.conf)';
  for (const result of report.machines) {
    assert.equal(result.status, 'failed', result.machine);
    assert.equal(result.error?.message, expected);
    assert.match(result.error!.hint!, /give one of them another address/);
  }
  // The claims are in the build records: a build with no change fails again, as does a build of one of them.
  assert.deepEqual(await statuses(root), { h1: 'failed', h2: 'failed' });
  assert.deepEqual(await statuses(root, ['h2']), { h2: 'failed' });
  const { machines } = await new Builder(repoPaths(root)).survey();
  assert.deepEqual(
    machines.map((m) => [m.machine, m.state, m.error?.message]),
    [
      ['h1', 'broken', expected],
      ['h2', 'broken', expected],
    ],
  );

  writeFiles(root, { [`machines/h2/${opt}/b.conf`]: 'ADDRESS=10.250.3.8\n' });
  assert.deepEqual(await statuses(root), { h1: 'up-to-date', h2: 'built' });
  const generated = JSON.parse(readFileSync(join(root, 'var/build/h1/generated.json'), 'utf8'));
  assert.deepEqual(generated['/usr/local/opt/initd/generators/containers'].claims, [
    { kind: 'address', value: '10.250.3.7', declaration: '/usr/local/opt/containers/a.conf', file: 'layers/x/usr/local/opt/containers/a.conf' },
  ]);
});

test('two declarations of one machine claiming one value fail it; distinct values build', async () => {
  const root = repo({ [`machines/h2/${opt}/b.conf`]: 'ADDRESS=10.250.3.9\n', [`machines/h1/${opt}/c.conf`]: 'ADDRESS=10.250.3.7\n' });
  const report = await build(root);
  assert.deepEqual(
    report.machines.map((m) => [m.machine, m.status]),
    [
      ['h1', 'failed'],
      ['h2', 'built'],
    ],
  );
  assert.match(
    report.machines[0]!.error!.message,
    /a\.conf of machine h1 \(layers\/x\/.*\) and by \/usr\/local\/opt\/containers\/c\.conf of machine h1 \(machines\/h1\//,
  );
});

test('machine lines are recorded, and hostedMachines reads them from the build records; the model has them', async () => {
  const root = repo({
    [`machines/h2/${opt}/b.conf`]: 'ADDRESS=fd00::8\nHOSTED=yes\nNAME=c2\n',
    [`layers/x/${opt}/a.conf`]: 'ADDRESS=10.250.3.7\nHOSTED=yes\nNAME=c1\n',
  });
  assert.deepEqual(await statuses(root), { h1: 'built', h2: 'built' });
  const generated = JSON.parse(readFileSync(join(root, 'var/build/h2/generated.json'), 'utf8'));
  assert.deepEqual(generated['/usr/local/opt/initd/generators/containers'].machines, [
    {
      name: 'c2',
      address: 'fd00::8',
      hostKey: '/var/lib/machines/b/etc/ssh/ssh_host_ed25519_key.pub',
      declaration: '/usr/local/opt/containers/b.conf',
      file: 'machines/h2/usr/local/opt/containers/b.conf',
    },
  ]);
  const hosted = hostedMachines(repoPaths(root), ['h1', 'h2']);
  assert.deepEqual(Object.fromEntries(hosted), {
    c1: {
      host: 'h1',
      address: '10.250.3.7',
      hostKeyPath: '/var/lib/machines/a/etc/ssh/ssh_host_ed25519_key.pub',
      declaration: '/usr/local/opt/containers/a.conf',
      file: 'layers/x/usr/local/opt/containers/a.conf',
    },
    c2: {
      host: 'h2',
      address: 'fd00::8',
      hostKeyPath: '/var/lib/machines/b/etc/ssh/ssh_host_ed25519_key.pub',
      declaration: '/usr/local/opt/containers/b.conf',
      file: 'machines/h2/usr/local/opt/containers/b.conf',
    },
  });
  assert.deepEqual((await loadModel(repoPaths(root))).hosted, hosted);
});

test('two hosts making one machine fail, and so does the machine; a machine hosting itself fails', async () => {
  const root = repo({
    [`layers/x/${opt}/a.conf`]: 'ADDRESS=10.250.3.7\nHOSTED=yes\nNAME=c1\n',
    [`machines/h2/${opt}/b.conf`]: 'ADDRESS=10.250.3.8\nHOSTED=yes\nNAME=c1\n',
    'machines/c1/etc/c1': 'c1\n',
  });
  const report = await build(root);
  assert.deepEqual(
    report.machines.map((m) => [m.machine, m.status]),
    [
      ['c1', 'failed'],
      ['h1', 'failed'],
      ['h2', 'failed'],
    ],
  );
  assert.equal(
    report.machines[0]!.error?.message,
    'machine c1 is hosted by /usr/local/opt/containers/a.conf of machine h1 (layers/x/usr/local/opt/containers/a.conf) and by /usr/local/opt/containers/b.conf of machine h2 (machines/h2/usr/local/opt/containers/b.conf)',
  );
  // A name with no one host is not reached through either.
  assert.equal(report.model.hosted.has('c1'), false);

  const self = repo({ [`machines/h2/${opt}/b.conf`]: 'ADDRESS=10.250.3.8\nHOSTED=yes\nNAME=h2\n' });
  const selfReport = await build(self);
  assert.deepEqual(
    selfReport.machines.map((m) => [m.machine, m.status]),
    [
      ['h1', 'built'],
      ['h2', 'failed'],
    ],
  );
  assert.match(selfReport.machines[1]!.error!.message, /h2 cannot be reached: h2 is reached through h2/);
});

test('a machine line that is not as its format says fails the generator', async () => {
  for (const [conf, why] of [
    ['ADDRESS=10.250.3.7\nHOSTED=yes\nNAME=a/b\n', /the machine name holds "\/"/],
    ['ADDRESS=host.example\nHOSTED=yes\n', /the address "host\.example" is not an IPv4 or IPv6 address/],
    ['ADDRESS=10.250.3.256\nHOSTED=yes\n', /is not an IPv4 or IPv6 address/],
  ] as const) {
    const root = repo({ [`layers/x/${opt}/a.conf`]: conf, [`machines/h2/${opt}/b.conf`]: 'ADDRESS=10.250.3.8\n' });
    const result = (await build(root, ['h1'])).machines[0]!;
    assert.equal(result.status, 'failed');
    assert.match(result.error!.message, /^the generator \/usr\/local\/opt\/initd\/generators\/containers printed a line homecloud refuses: "machine\\t/);
    assert.match(result.error!.message, why);
    assert.equal(result.error!.where?.file, 'layers/ct/usr/local/opt/initd/generators/containers');
  }
});

test('reading a generator: output, claim, machine and offer lines; malformed ones refused; other words ignored', () => {
  const refuse = (why: string): never => {
    throw new Error(why);
  };
  const inputs = ['/d/a.conf'];
  const read = readGeneratorLines(
    [
      '/out/x\t/d/a.conf',
      'claim\tport\t8080\t/d/a.conf',
      'claim\tport\t8080\t/d/a.conf',
      'machine\tc\t10.0.0.2\t/k.pub\t/d/a.conf',
      'offer\tsubnet\t10.1.0.0/24\t/d/a.conf',
      'note\twhatever',
      '',
    ].join('\n'),
    inputs,
    refuse,
  );
  assert.deepEqual(read, {
    from: { '/out/x': '/d/a.conf' },
    claims: [{ kind: 'port', value: '8080', declaration: '/d/a.conf' }],
    machines: [{ name: 'c', address: '10.0.0.2', hostKey: '/k.pub', declaration: '/d/a.conf' }],
    offers: [{ key: 'subnet', value: '10.1.0.0/24', declaration: '/d/a.conf' }],
  });
  assert.throws(() => readGeneratorLines('offer\tsub net\tx\t/d/a.conf\n', inputs, refuse), /the key is a word/);
  assert.throws(() => readGeneratorLines('offer\tsubnet\tx\u0007\t/d/a.conf\n', inputs, refuse), /control character/);
  assert.throws(() => readGeneratorLines('claim\tport\t8080\n', inputs, refuse), /has 3 fields, not 4/);
  assert.throws(() => readGeneratorLines('claim\tport\t8080\t/d/other.conf\n', inputs, refuse), /none of its inputs/);
  assert.throws(() => readGeneratorLines('claim\t1port\t8080\t/d/a.conf\n', inputs, refuse), /the kind is a word/);
  assert.throws(() => readGeneratorLines('machine\tc\t10.0.0.2\tk.pub\t/d/a.conf\n', inputs, refuse), /not an absolute path/);
  assert.ok(['10.0.0.1', '::1', 'fd00::7', '::ffff:10.0.0.1'].every(isIpAddress));
  assert.ok(!['10.0.0', '010.0.0.1', 'fd00::7%eth0', '[fd00::7]', 'a.example', ''].some(isIpAddress));
});

/** A repository whose h1 hosts c1 (machines/c1/ gives it files), built. */
async function hostingRepo(files: Record<string, FixtureFile> = {}) {
  const root = repo({
    [`layers/x/${opt}/a.conf`]: 'ADDRESS=10.250.3.7\nHOSTED=yes\nNAME=c1\n',
    [`machines/h2/${opt}/b.conf`]: 'ADDRESS=10.250.3.8\n',
    'machines/c1/etc/c1': 'c1\n',
    'inventory.json': JSON.stringify({ h1: { host: 'h1.example', user: 'admin', options: ['-i', '/keys/h1', '-p', '2222'] } }),
    ...files,
  });
  assert.deepEqual(await statuses(root), { c1: 'built', h1: 'built', h2: 'built' });
  return root;
}

test('a hosted machine with no inventory entry is reached as root at its address through its host, its host key checked strictly', async () => {
  const root = await hostingRepo();
  // The build that made its host's record built it again with its new entry (its probe facts go with it): nothing is left to do.
  assert.deepEqual(await statuses(root), { c1: 'up-to-date', h1: 'up-to-date', h2: 'up-to-date' });
  const model = await loadModel(repoPaths(root));
  const known = join(root, 'var/known_hosts/c1');
  const target = targetOf(model, 'c1');
  assert.deepEqual(target.entry, {
    host: '10.250.3.7',
    user: 'root',
    options: ['-i', '/keys/h1', '-o', `UserKnownHostsFile=${known}`, '-o', 'StrictHostKeyChecking=yes'],
    via: 'h1',
  });
  assert.deepEqual(target.via, targetOf(model, 'h1'));
  assert.deepEqual(target.hostKey, { path: '/var/lib/machines/a/etc/ssh/ssh_host_ed25519_key.pub', knownHosts: known });
  assert.equal(reachProblem(model, 'c1'), undefined);
  const args = sshArguments(target);
  assert.deepEqual(args.slice(-8), ['-i', '/keys/h1', '-o', `UserKnownHostsFile=${known}`, '-o', 'StrictHostKeyChecking=yes', '--', 'root@10.250.3.7']);
  // The hop is the host's own ssh, with its options and shared connection.
  assert.deepEqual(hopArguments(args), [...sshArguments(targetOf(model, 'h1')).slice(0, -2), '-W', '10.250.3.7:22', '--', 'admin@h1.example']);

  // An entry of its own wins.
  writeFiles(root, { 'inventory.json': JSON.stringify({ c1: { host: 'c1.example' } }) });
  const own = targetOf(await loadModel(repoPaths(root)), 'c1');
  assert.deepEqual([own.entry.host, own.via, own.hostKey], ['c1.example', undefined, undefined]);
});

test('with --sandbox, a hosted machine is reached through its host sandbox machine, never through inventory.json', async () => {
  const root = await hostingRepo({ 'inventory.json': JSON.stringify({ c1: { host: 'c1.example' } }) });
  const paths = repoPaths(root);
  paths.sandboxInventory = join(root, 'sandbox-inventory.json');
  const sandboxOptions = ['-i', '/sandbox/key', '-o', 'IdentitiesOnly=yes', '-o', 'UserKnownHostsFile=/sandbox/known_hosts', '-o', 'StrictHostKeyChecking=yes'];
  writeFileSync(paths.sandboxInventory, JSON.stringify({ h1: { host: '10.231.1.2', user: 'root', options: sandboxOptions } }));
  const model = await loadModel(paths);
  assert.equal(reachProblem(model, 'c1'), undefined);
  const target = targetOf(model, 'c1');
  assert.equal(target.entry.host, '10.250.3.7');
  assert.deepEqual(target.entry.options, [
    '-i',
    '/sandbox/key',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    `UserKnownHostsFile=${join(root, 'var/known_hosts/c1')}`,
    '-o',
    'StrictHostKeyChecking=yes',
  ]);
  assert.equal(target.via?.entry.host, '10.231.1.2');
  // Its host not booted: the hosted machine says so.
  writeFileSync(paths.sandboxInventory, JSON.stringify({}));
  assert.match(
    reachProblem(await loadModel(paths), 'c1')!.message,
    /it is reached through its host h1, which cannot be reached: h1 is not running in the sandbox/,
  );
  assert.match(reachProblem(await loadModel(paths), 'h2')!.message, /h2 is not running in the sandbox/);
});

test('the build of a hosted machine with its hosts builds its host too (the hosted map is then current)', async () => {
  const root = await hostingRepo();
  writeFiles(root, { [`layers/x/${opt}/a.conf`]: 'ADDRESS=10.250.3.9\nHOSTED=yes\nNAME=c1\n' });
  const report = await new Builder(repoPaths(root)).build({ machines: ['c1'], withHosts: true });
  assert.deepEqual(
    report.machines.map((m) => [m.machine, m.status]),
    [
      ['c1', 'built'],
      ['h1', 'built'],
    ],
  );
  assert.equal(inventoryEntry(report.model, 'c1').host, '10.250.3.9');
  assert.equal(targetOf(report.model, 'c1').entry.host, '10.250.3.9');
});

test('a hosted machine waits for its host (or its host host) among the machines worked on; machines hosting each other wait for none forever', () => {
  const hosts: Record<string, string> = { c1: 'h1', c2: 'h1', n1: 'c1', x: 'y', y: 'x' };
  const hostOf = (machine: string) => hosts[machine];
  assert.deepEqual(Object.fromEntries(hostsWithin(['h1', 'c1', 'c2', 'n1', 'h2'], hostOf)), { c1: 'h1', c2: 'h1', n1: 'c1' });
  assert.deepEqual(Object.fromEntries(hostsWithin(['h1', 'n1'], hostOf)), { n1: 'h1' });
  assert.deepEqual(Object.fromEntries(hostsWithin(['c1'], hostOf)), {});
  const loop = hostsWithin(['x', 'y'], hostOf);
  assert.ok(loop.size <= 1, JSON.stringify([...loop]));
});

test("the host's identity options come along to the machines it hosts", () => {
  assert.deepEqual(identityOptions(['-p', '2222', '-i', '/k', '-oIdentitiesOnly=yes', '-o', 'IdentityFile=/k2', '-o', 'ProxyJump=x', '-i/k3', '-v']), [
    '-i',
    '/k',
    '-oIdentitiesOnly=yes',
    '-o',
    'IdentityFile=/k2',
    '-i/k3',
  ]);
});

test('an IPv6 hosted machine: the hop forwards to [address]:port', () => {
  const host: Target = { machine: 'h1', entry: { host: 'h1.example', user: 'root', options: [] } };
  const args = sshArguments({ machine: 'c', entry: { host: 'fd00::7', user: 'root', options: [], via: 'h1' }, via: host });
  assert.deepEqual(hopArguments(args).slice(-4), ['-W', '[fd00::7]:22', '--', 'root@h1.example']);
});

/** The hop's argv as ssh runs its ProxyCommand (through /bin/sh, %-tokens expanded): a stand-in ssh on PATH writes it down. */
function hopArguments(args: string[]): string[] {
  const bin = mkdtempSync(join(tmpdir(), 'homecloud-hop-'));
  try {
    const seen = join(bin, 'argv');
    writeFileSync(join(bin, 'ssh'), `#!/bin/bash\nprintf '%s\\0' "$@" > ${shellQuote(seen)}\n`);
    chmodSync(join(bin, 'ssh'), 0o755);
    const ssh = spawnSync('/usr/bin/ssh', [...args, 'true'], {
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.notEqual(ssh.status, 0);
    return readFileSync(seen, 'utf8').split('\0').slice(0, -1);
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
}

test('the host key is read through the host into var/known_hosts/<machine> (0600) before the machine is reached; a missing one says to start it', async () => {
  const root = makeRepo({});
  const hostRoot = join(root, 'host');
  mkdirSync(hostRoot);
  const keyPath = join(hostRoot, 'ssh_host_ed25519_key.pub');
  const host: Target = { machine: 'h1', entry: { host: 'h1', user: 'root', options: [] }, transport: new LocalTransport(hostRoot) };
  const known = join(root, 'var/known_hosts/c1');
  const target: Target = {
    machine: 'c1',
    entry: { host: '10.250.3.7', user: 'root', options: [], via: 'h1' },
    via: host,
    hostKey: { path: keyPath, knownHosts: known },
  };

  await assert.rejects(learnHostKeys(target), (error: Error & { hint?: string }) => {
    assert.equal(error.message, 'its host h1 has not made it yet (a container that has not started: START=no or on-demand)');
    assert.match(error.hint!, /^start it, e\.g\. homecloud exec h1 -- systemctl start homecloud-container@c1\.service/);
    return true;
  });

  writeFileSync(keyPath, 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0n root@c1\n');
  await learnHostKeys(target);
  assert.equal(readFileSync(known, 'utf8'), '10.250.3.7 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0n\n');
  assert.equal(statSync(known).mode & 0o777, 0o600);
  // Read again every time: a container cloned again has a new key.
  writeFileSync(keyPath, 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAInew\n');
  await learnHostKeys(target);
  assert.equal(readFileSync(known, 'utf8'), '10.250.3.7 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAInew\n');

  writeFileSync(keyPath, '@cert-authority * ssh-ed25519 AAAA\n');
  await assert.rejects(learnHostKeys(target), /is not an OpenSSH public key/);
  chmodSync(keyPath, 0o644);
  assert.equal(publicKeyIn('ecdsa-sha2-nistp256 AAAAE2Vj= c\nmore\n'), 'ecdsa-sha2-nistp256 AAAAE2Vj=');
  assert.equal(publicKeyIn('ssh-ed25519 AAAA\tx; rm -rf /'), 'ssh-ed25519 AAAA');
  assert.equal(publicKeyIn('10.0.0.1 ssh-ed25519 AAAA'), undefined);
});

test('across machines, a hosted machine is worked on after its host, and not at all when its host failed', async () => {
  // h1 refuses connections at once: reading c1's host key through it fails, and says so.
  const root = await hostingRepo({ 'inventory.json': JSON.stringify({ h1: { host: '127.0.0.1', options: ['-p', '1'] } }) });
  const options = { repo: root, json: false, verbose: false };
  const calls: string[] = [];
  const failing = await acrossBuiltMachines(
    options,
    ['c1', 'h1'],
    async (target) => {
      calls.push(target.machine);
      if (target.machine === 'h1') throw new HomecloudError('boom');
      return true;
    },
    { hostsFirst: (ok) => ok },
  );
  assert.deepEqual(calls, ['h1']);
  const byMachine = Object.fromEntries(failing.outcomes.map((o) => [o.machine, o.error?.message]));
  assert.deepEqual(byMachine, { c1: 'its host h1 failed', h1: 'boom' });

  calls.length = 0;
  const done = await acrossBuiltMachines(options, ['c1', 'h1'], async (target) => void calls.push(target.machine), { hostsFirst: () => true });
  assert.deepEqual(calls, ['h1']);
  assert.match(
    done.outcomes.find((o) => o.machine === 'c1')!.error!.message,
    /^cannot read its host key \/var\/lib\/machines\/a\/etc\/ssh\/ssh_host_ed25519_key\.pub on its host h1: cannot reach 127\.0\.0\.1/,
  );
  // Named alone, only it is worked on (its host is built, not worked on).
  calls.length = 0;
  const alone = await acrossBuiltMachines(options, ['c1'], async (target) => void calls.push(target.machine));
  assert.deepEqual([calls, alone.outcomes.map((o) => o.machine)], [[], ['c1']]);
});
