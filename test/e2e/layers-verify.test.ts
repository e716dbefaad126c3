// `systemd-analyze verify` for every unit the standard layers ship, as the
// example's machines and one machine per standard layer get them, on a
// sandbox machine: it has the Debian units and programs they refer to, which
// this host may lack.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Manifest } from '../../src/build/manifest.ts';
import { shellQuote } from '../../src/transport/ssh.ts';
import { testSandbox } from '../helpers/sandbox.ts';
import { unitsIn } from '../../src/check/verify.ts';
import { buildEveryStandardLayer } from '../helpers/standard-layers.ts';

// The cloud image: the containers layer's units run systemd-nspawn, which the base image lacks.
const { box, skip } = testSandbox('verify', 'cloud');
test('systemd-analyze verify passes, with nothing to say, for every unit of every standard layer and of the example', { skip }, async () => {
  const { repo, trees } = buildEveryStandardLayer();
  await box!.up(['verify']);
  const address = box!.sandbox.list().find((machine) => machine.name === 'verify')!.address;
  const rsyncShell = ['ssh', ...box!.sshOptions()].map(shellQuote).join(' ');
  let verified = 0;
  for (const [machine, tree] of Object.entries(trees)) {
    const units = unitsIn(tree);
    if (units.length === 0) continue;
    // The machine's tree in place, so that what the units name is there; taken away again after.
    const copy = spawnSync('rsync', ['-a', '-e', rsyncShell, `${tree}/`, `root@${address}:/`], { encoding: 'utf8' });
    assert.equal(copy.status, 0, copy.stderr);
    const verify = box!.ssh('verify', `systemd-analyze verify --man=no ${units.map(shellQuote).join(' ')}`);
    assert.deepEqual([verify.status, verify.stderr], [0, ''], `${machine}: ${units.join(' ')}`);
    const manifest = JSON.parse(readFileSync(join(repo, 'var/build', machine, 'manifest.json'), 'utf8')) as Manifest;
    const placed = Object.keys(manifest.entries).filter((path) => manifest.entries[path]!.type !== 'dir');
    assert.equal(box!.ssh('verify', `rm -f ${placed.map(shellQuote).join(' ')}`).status, 0);
    verified += units.length;
  }
  assert.ok(verified > 0);
  assert.ok(Object.keys(trees).includes('layer-journal'), 'one machine per standard layer');
});
