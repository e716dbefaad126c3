// What homecloud places is root's; what comes from machines and secrets is data; secrets stay secret;
// nothing is read from outside the repository unasked; inventory entries are never options.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { assertMachineIsItsGeneration } from '../helpers/invariant.ts';
import { makeRepo, preludeOnlyBase, writeFiles } from '../helpers/repo.ts';
import { sandboxCli, testSandbox } from '../helpers/sandbox.ts';

const { box, skip } = testSandbox('security');
const repo = makeRepo({
  ...preludeOnlyBase,
  'machines/m/usr/local/opt/initd/layers/10.txt': '+ s\n',
  'layers/s/usr/local/opt/s/plain.txt': 'plain\n',
  'layers/s/usr/local/opt/s/run.sh': { content: '#!/bin/sh\necho run\n', mode: 0o755 },
});
const outside = mkdtempSync(join(tmpdir(), 'homecloud-outside-'));
after(() => rmSync(outside, { recursive: true, force: true }));
const cli = sandboxCli(box, repo);
const on = (command: string) => box!.ssh('m', command).stdout;
const generation = () => on('cat /var/lib/homecloud/generations/last');

function deploy(context: string) {
  const result = cli(['deploy', 'm']);
  assert.equal(result.status, 0, `${context}: ${result.stdout}${result.stderr}`);
  assertMachineIsItsGeneration(box!, 'm', context);
  return result;
}

test("everything homecloud places is root's, whoever built the tree; a wrong owner is put right", { skip }, async () => {
  await box!.up(['m']);
  assert.equal(cli(['build', 'm']).status, 0);
  // As if an ordinary user had built it.
  execFileSync('chown', ['-R', '65534:65534', join(repo, 'var/build/m/tree')]);
  deploy('a tree owned by nobody');
  assert.equal(on('find /usr/local/opt/s \\! -user root -o \\! -group root | wc -l'), '0');
  box!.ssh('m', 'chown nobody:nogroup /usr/local/opt/s/run.sh /usr/local/opt/s');
  const corrected = deploy('owners changed by hand');
  assert.match(corrected.stdout, /drift corrected: 2 paths/);
  assert.equal(on('stat -c %U:%G /usr/local/opt/s/run.sh /usr/local/opt/s'), 'root:root\nroot:root');
});

test('a probed value that m4 would run is refused, naming machine and fact; nothing runs on this host and nothing changes on the machine', { skip }, () => {
  const marker = join(tmpdir(), `homecloud-pwned-${process.pid}`);
  box!.ssh(
    'm',
    `cp /etc/os-release /root/os-release && sed -i 's|^VERSION_CODENAME=.*|VERSION_CODENAME="bookworm m4_syscmd(touch ${marker})"|' /etc/os-release`,
  );
  writeFiles(repo, { 'layers/s/usr/local/opt/s/release.m4.txt': 'codename=m5_or([ENV_VERSION_CODENAME], [unknown])\n' });
  try {
    const before = generation();
    const facts = cli(['facts', '--refresh', 'm']);
    assert.equal(facts.status, 1);
    assert.match(facts.stderr, /m: the probed fact ENV_VERSION_CODENAME \("bookworm m4_syscmd\(touch [^)]+\)"\) is not/);
    const deployed = cli(['deploy', 'm']);
    assert.equal(deployed.status, 1);
    assert.match(deployed.stderr, /ENV_VERSION_CODENAME/);
    assert.equal(existsSync(marker), false, 'm4_syscmd never ran here');
    assert.equal(generation(), before, 'nothing was deployed');
  } finally {
    box!.ssh('m', 'mv /root/os-release /etc/os-release');
    rmSync(marker, { force: true });
  }
});

test('probe facts and secret facts render literally: m4 syntax, macro names and $ in them come out as written', { skip }, () => {
  box!.ssh('m', "cp /etc/os-release /root/os-release && sed -i 's|^ID=.*|ID=m4_dnl|' /etc/os-release");
  const hash = '$2y$10$abcdefghijklmnopqrstuv$1$#[x]';
  writeFiles(repo, {
    'facts/m.env': `ENV_HASH=${hash}\nENV_TOKEN=Sup3r$1Secret\n`,
    'layers/s/usr/local/opt/s/id.m4.txt': 'id=ENV_ID end\n',
    'layers/s/usr/local/opt/s/secret.m4.txt': 'hash=ENV_HASH\ntoken=m5_or([ENV_TOKEN], [none])\n',
  });
  try {
    assert.equal(cli(['facts', '--refresh', 'm']).status, 0);
    const outputs = [cli(['plan', 'm']), cli(['--json', 'plan', 'm'])];
    const deployed = deploy('literal facts');
    outputs.push(deployed);
    assert.equal(on('cat /usr/local/opt/s/id.txt'), 'id=m4_dnl end');
    assert.equal(on('cat /usr/local/opt/s/secret.txt; stat -c "%a %U" /usr/local/opt/s/secret.txt'), `hash=${hash}\ntoken=Sup3r$1Secret\n600 root`);
    box!.ssh('m', 'echo "# edited" >> /usr/local/opt/s/secret.txt');
    outputs.push(cli(['diff', 'm']), cli(['--json', 'diff', 'm']), cli(['plan', 'm']), cli(['--json', 'deploy', 'm']));
    for (const output of outputs) {
      const text = output.stdout + output.stderr;
      assert.ok(!text.includes('abcdefghijklmnopqrstuv') && !text.includes('Sup3r'), `no secret in: ${text}`);
    }
    assertMachineIsItsGeneration(box!, 'm', 'after the edit was put right');
  } finally {
    box!.ssh('m', 'mv /root/os-release /etc/os-release');
  }
  assert.equal(cli(['facts', '--refresh', 'm']).status, 0);
});

test('an m4 error over a secret names the fact and shows no piece of it, in text and in --json', { skip }, () => {
  const before = generation();
  writeFiles(repo, { 'facts/m.env': 'ENV_PIN=zq81,wv27\n', 'layers/s/usr/local/opt/s/pin.m4.txt': 'pin=m5_clamp(1, ENV_PIN, 5)\n' });
  for (const args of [
    ['deploy', 'm'],
    ['--json', 'deploy', 'm'],
    ['build', 'm'],
    ['--json', 'build', 'm'],
  ]) {
    const result = cli(args);
    assert.equal(result.status, 1, args.join(' '));
    const text = result.stdout + result.stderr;
    assert.match(text, /ENV_PIN/);
    for (const piece of ['zq81', 'wv27']) assert.ok(!text.includes(piece), `${args.join(' ')} shows a piece of the secret: ${text}`);
  }
  assert.equal(generation(), before);
  writeFiles(repo, { 'facts/m.env': 'ENV_PIN=3\n' });
  deploy('the secret fixed');
  assert.equal(on('cat /usr/local/opt/s/pin.txt'), 'pin=3');
});

test('a "!" link to a file outside the repository fails the deploy, naming link and target, unless homecloud.json allows its directory', { skip }, () => {
  writeFiles(outside, { 'cert.pem': 'outside\n' });
  writeFiles(repo, { 'layers/s/usr/local/opt/s/!cert.pem': { link: join(outside, 'cert.pem') } });
  const before = generation();
  const refused = cli(['deploy', 'm']);
  assert.equal(refused.status, 1);
  assert.match(
    refused.stderr,
    new RegExp(`layers/s/usr/local/opt/s/!cert\\.pem: links to ${join(outside, 'cert.pem').replace(/[.]/g, '\\.')}, outside the repository`),
  );
  assert.equal(generation(), before);
  writeFiles(repo, { 'homecloud.json': JSON.stringify({ readOutside: [outside] }) });
  deploy('the directory allowed');
  assert.equal(on('cat /usr/local/opt/s/cert.pem'), 'outside');
  // A link into facts/ is a secret: root's alone.
  writeFiles(repo, { 'facts/m-key.txt': 'key\n', 'layers/s/usr/local/opt/s/!key': { link: '../../../../../../facts/m-key.txt' } });
  deploy('a link into facts/');
  assert.equal(on('stat -c "%a %U" /usr/local/opt/s/key'), '600 root');
});

test('an inventory host or user that ssh would read as an option is refused before anything runs', { skip }, () => {
  const marker = join(tmpdir(), `homecloud-inventory-${process.pid}`);
  for (const entry of [{ host: `-oProxyCommand=touch ${marker}` }, { host: 'm', user: '-oProxyCommand=x' }, { user: 'root x' }]) {
    writeFiles(repo, { 'inventory.json': JSON.stringify({ m: entry }, null, 1) });
    const result = cli(['deploy', 'm']);
    assert.equal(result.status, 2, JSON.stringify(entry));
    assert.match(result.stderr, /^error: inventory\.json:\d+:\d+: the (host|user) of machine "m" /m);
    assert.equal(existsSync(marker), false);
  }
  rmSync(join(repo, 'inventory.json'));
  deploy('the inventory fixed');
});
