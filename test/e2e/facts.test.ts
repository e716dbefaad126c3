import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { InventoryEntry } from '../../src/load/inventory.ts';
import { closeConnection } from '../../src/transport/ssh.ts';
import { projectRoot, runCli } from '../helpers/repo.ts';
import { testSandbox } from '../helpers/sandbox.ts';

const { box, skip } = testSandbox('facts');
const repo = mkdtempSync(join(tmpdir(), 'homecloud-facts-'));
after(() => rmSync(repo, { recursive: true, force: true }));
cpSync(join(projectRoot, 'examples/homelab'), repo, { recursive: true, verbatimSymlinks: true, filter: (source) => !source.includes('/var') });
const cli = (args: string[]) => runCli(['-C', repo, '--sandbox', ...args], { env: { HOMECLOUD_SANDBOX: box?.paths.home ?? '' } });

test('facts reads the probe facts of every machine in one round trip each and caches them', { skip }, async () => {
  await box!.up(['gateway', 'nas', 'media']);
  writeFileSync(join(repo, 'layers/hello/usr/local/etc/cpus.m4.txt'), 'cpus m5_assert([ENV_NPROC])\n');
  const before = cli(['build', 'nas']);
  assert.equal(before.status, 1);
  assert.match(before.stderr, /ENV_NPROC is not set: it is read from the live machine/);
  assert.match(before.stderr, /run: homecloud facts nas/);

  const facts = cli(['facts']);
  assert.equal(facts.status, 0, facts.stderr);
  assert.match(facts.stdout, /^nas\s+probed/m);
  const cached = JSON.parse(readFileSync(join(repo, 'var/facts/nas.json'), 'utf8')) as { facts: Record<string, string> };
  assert.equal(cached.facts.ENV_HOSTNAME, 'nas');
  assert.equal(cached.facts.ENV_ID, 'debian');
  assert.equal(cached.facts.ENV_VERSION_CODENAME, 'bookworm');
  assert.ok(Number(cached.facts.ENV_NPROC) >= 1);
  assert.ok(Number(cached.facts.ENV_MEMBYTES) > 1e6);

  const after = cli(['build', 'nas']);
  assert.equal(after.status, 0, after.stderr);
  assert.equal(readFileSync(join(repo, 'var/build/nas/tree/usr/local/etc/cpus.txt'), 'utf8'), `cpus ${cached.facts.ENV_NPROC}\n`);
  const again = cli(['facts', 'nas']);
  assert.match(again.stdout, /^nas\s+cached/m);
});

test('exec runs a command on machines in parallel with each line prefixed by its machine', { skip }, () => {
  const ok = cli(['exec', 'nas', 'media', '--', 'hostname']);
  assert.equal(ok.status, 0, ok.stderr);
  assert.deepEqual(ok.stdout.trim().split('\n').sort(), ['media | media', 'nas   | nas']);
  const failing = cli(['exec', 'nas', '--', 'exit 3']);
  assert.equal(failing.status, 1);
  assert.match(failing.stderr, /nas: exit status 3/);
});

test('a changed host key is refused with an explanation, and an unreachable machine does not stop the others', { skip }, async () => {
  await box!.sandbox.down(['media']);
  const inventory = JSON.parse(readFileSync(box!.paths.inventory, 'utf8')) as Record<string, InventoryEntry>;
  const address = inventory.gateway!.host;
  const known = readFileSync(box!.paths.knownHosts, 'utf8');
  const lines = known.trim().split('\n');
  const other = lines
    .find((line) => !line.startsWith(`${address} `))!
    .split(' ')
    .slice(1)
    .join(' ');
  writeFileSync(box!.paths.knownHosts, lines.map((line) => (line.startsWith(`${address} `) ? `${address} ${other}` : line)).join('\n') + '\n');
  // The master connection was authenticated before the key changed: a new connection meets the changed key.
  closeConnection({ machine: 'gateway', entry: inventory.gateway! });
  try {
    const facts = cli(['facts', '--refresh', 'gateway', 'nas', 'media']);
    assert.equal(facts.status, 1);
    assert.match(facts.stderr, /gateway: the host key of 10\.231\.\d+\.\d+ is not the one in known_hosts: refused/);
    assert.match(facts.stderr, /media: media is not running in the sandbox\n  start it with: homecloud sandbox up media/);
    assert.match(facts.stdout, /^nas\s+probed/m);
  } finally {
    writeFileSync(box!.paths.knownHosts, known);
  }
});
