import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SandboxPaths } from '../../src/sandbox/paths.ts';

test('a sandbox keeps the subnet its directory suggests while no interface has it, else takes the next free one and remembers it', () => {
  const home = mkdtempSync(join(tmpdir(), 'homecloud-paths-'));
  try {
    const suggested = new SandboxPaths(home).subnet;
    assert.ok(suggested >= 16 && suggested < 240);
    assert.equal(new SandboxPaths(home).chooseSubnet(new Set([5])), suggested);
    const next = suggested === 239 ? 16 : suggested + 1;
    assert.equal(new SandboxPaths(home).chooseSubnet(new Set([suggested])), next);
    assert.equal(readFileSync(join(home, 'subnet'), 'utf8'), `${next}\n`);
    const later = new SandboxPaths(home);
    assert.equal(later.subnet, next, 'read back by the next command');
    assert.equal(later.hostAddress, `10.231.${next}.1`);
    assert.equal(later.address(2), `10.231.${next}.12`);
    assert.throws(() => later.chooseSubnet(new Set(Array.from({ length: 224 }, (_, i) => 16 + i))), /every 10\.231\.x\.0\/24 subnet/);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
