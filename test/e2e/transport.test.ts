import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { InventoryEntry } from '../../src/load/inventory.ts';
import { closeConnection, sshArguments, transportFor } from '../../src/transport/ssh.ts';
import type { Target } from '../../src/transport/transport.ts';
import { testSandbox } from '../helpers/sandbox.ts';

/** Reaching a machine through another (a bastion; later the host of a container or VM): the ssh transport's `via`. */
const { box, skip } = testSandbox('transport');
const scratch = mkdtempSync(join(tmpdir(), 'homecloud-transport-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

test('a machine behind a hop: scripts, sessions, trees and fetches go through the hop, over its own shared connection', { skip }, async () => {
  await box!.up(['hop', 'inner']);
  const inventory = JSON.parse(readFileSync(box!.paths.inventory, 'utf8')) as Record<string, InventoryEntry>;
  const hop: Target = { machine: 'hop', entry: inventory.hop! };
  const inner: Target = { machine: 'inner', entry: inventory.inner!, via: hop };
  const transport = transportFor(inner);
  try {
    // sshd on the inner machine sees the connection come from the hop, not from this host.
    const seen = await transport.run('echo "${SSH_CONNECTION%% *}"; hostname');
    assert.equal(seen.status, 0, seen.stderr);
    assert.equal(seen.stdout, `${inventory.hop!.host}\ninner\n`);
    const master = spawnSync('ssh', ['-O', 'check', ...sshArguments(hop)], { encoding: 'utf8' });
    assert.equal(master.status, 0, `the hop has a master connection: ${master.stderr}`);

    const session = transport.open('echo ready; read -r word; echo "got $word"');
    assert.equal(await session.nextLine(), 'ready');
    session.write('through\n');
    assert.equal(await session.nextLine(), 'got through');
    session.end();
    assert.equal((await session.done).status, 0);

    const tree = join(scratch, 'tree');
    mkdirSync(join(tree, 'etc'), { recursive: true });
    writeFileSync(join(tree, 'etc/hello.conf'), 'hello through the hop\n');
    const sent = await transport.sendTree(tree, '/var/tmp/homecloud-hop/tree');
    assert.equal(sent.status, 0, sent.stderr);
    const back = join(scratch, 'back');
    const fetched = await transport.fetchTree('/var/tmp/homecloud-hop', back);
    assert.equal(fetched.status, 0, fetched.stderr);
    assert.equal(readFileSync(join(back, 'tree/etc/hello.conf'), 'utf8'), 'hello through the hop\n');
  } finally {
    closeConnection(inner);
    closeConnection(hop);
  }
});
