// Looking into the builder's files of records keyed by path (manifest, render cache) without parsing them whole.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { KeyedFile, KeyedJson } from '../../src/build/keyed-json.ts';
import { hasNativeWalker } from '../../src/util/native.ts';
import { sortEntries, type Manifest, type ManifestEntries } from '../../src/build/manifest.ts';
import type { RenderCache } from '../../src/build/layout.ts';

const tricky: ManifestEntries = sortEntries({
  '/etc': { type: 'dir', mode: '0755' },
  '/etc/a.conf': { type: 'file', mode: '0644', sha256: 'a'.repeat(64) },
  // A link whose target reads like an entry of the manifest.
  '/etc/link': { type: 'link', target: '","/etc/b.conf":{"type":"file"} }' },
  '/etc/b.conf': { type: 'file', mode: '0600', sha256: 'b'.repeat(64), secret: true },
  '/etc/quote"/b.conf\\': { type: 'file', mode: '0644', sha256: 'c'.repeat(64) },
  '/etc/b.conf\\': { type: 'file', mode: '0644', sha256: 'd'.repeat(64) },
  '/etc/é ü.conf': { type: 'file', mode: '0644', sha256: 'e'.repeat(64), owner: 'www:www' },
  '/usr/local/opt/initd/generators': { type: 'dir', mode: '0755' },
});

function manifestOf(entries: ManifestEntries): Manifest {
  return { format: 1, machine: 'm', owner: 'root:root', entries, packages: { install: ['curl', '/etc/a.conf'], purge: [] } };
}

const bytesOf = (value: unknown) => Buffer.from(JSON.stringify(value) + '\n');

test('every record is found as JSON.parse finds it, in any order; a missing one is undefined', () => {
  const file = new KeyedJson(bytesOf(manifestOf(tricky)));
  for (const dest of [...Object.keys(tricky)].reverse()) assert.deepEqual(file.get(dest), tricky[dest], dest);
  for (const dest of Object.keys(tricky)) assert.deepEqual(file.get(dest), tricky[dest], dest);
  assert.equal(file.get('/etc/nope'), undefined);
  assert.equal(file.get('/usr/local/opt/initd'), undefined);
  // Each record after each other one: the search goes on from the last record, then looks before it.
  for (const first of Object.keys(tricky)) {
    for (const then of Object.keys(tricky)) {
      const fresh = new KeyedJson(bytesOf(manifestOf(tricky)));
      assert.deepEqual(fresh.get(first), tricky[first], first);
      assert.deepEqual(fresh.get(then), tricky[then], `${then} after ${first}`);
      assert.equal(fresh.get('/etc/nope'), undefined);
    }
  }
});

test('records replaced: byte for byte what JSON.stringify of the changed whole gives', () => {
  const file = new KeyedJson(bytesOf(manifestOf(tricky)));
  const changes: ManifestEntries = {
    '/etc/b.conf\\': { type: 'file', mode: '0755', sha256: 'f'.repeat(64) },
    '/etc/a.conf': { type: 'file', mode: '0600', sha256: '0'.repeat(64), secret: true },
    '/etc/link': { type: 'link', target: '../x}' },
  };
  assert.deepEqual(file.replaced(file.replacements(changes)!), bytesOf(manifestOf({ ...tricky, ...changes })));
  assert.deepEqual(file.replacements({}), []);
  assert.equal(file.replacements({ '/etc/new': { type: 'dir', mode: '0755' } }), undefined);
  // A new hash keeps the length: the caller writes those bytes in place.
  const [same] = file.replacements({ '/etc/a.conf': { type: 'file', mode: '0644', sha256: '9'.repeat(64) } })!;
  assert.equal(same!.bytes.length, same!.end - same!.start);
});

test("the render cache's records, arrays of arrays, are looked up and replaced the same way", () => {
  const renders: RenderCache = {
    '/repo/layers/a/x.m4.conf': ['k1:f1', 'd1', false, false, '', [], ['ENV_A', 'ENV_B]']],
    '/repo/layers/a/y.m4.conf': ['k2:f2', 'd2', false, true, '-', ['/repo/shared/[x].m4'], []],
  };
  const file = new KeyedJson(bytesOf(renders));
  assert.deepEqual(file.get('/repo/layers/a/y.m4.conf'), renders['/repo/layers/a/y.m4.conf']);
  const change: RenderCache = { '/repo/layers/a/x.m4.conf': ['k3:f3', 'd3', false, false, '', [], ['ENV_A']] };
  assert.deepEqual(file.replaced(file.replacements(change)!), bytesOf({ ...renders, ...change }));
});

test('generators are found by their directory, not by the directory alone', () => {
  assert.equal(new KeyedJson(bytesOf(manifestOf(tricky))).hasKeyUnder('/usr/local/opt/initd/generators/'), false);
  const withGenerator = { ...tricky, '/usr/local/opt/initd/generators/dns': { type: 'file', mode: '0755', sha256: '1'.repeat(64) } } as ManifestEntries;
  assert.equal(new KeyedJson(bytesOf(manifestOf(sortEntries(withGenerator)))).hasKeyUnder('/usr/local/opt/initd/generators/'), true);
});

test('text that is not what the builder writes gives no record', () => {
  assert.equal(new KeyedJson(Buffer.from('{"entries":{"/a":{"type":"di')).get('/a'), undefined);
  assert.equal(new KeyedJson(Buffer.from('{"entries":{"/a":{"type":di}}}')).get('/a'), undefined);
  assert.equal(new KeyedJson(Buffer.from('{"entries":{"/a":"text"}}')).get('/a'), undefined);
});

const skipNative = !hasNativeWalker() && process.env.CI !== 'true' ? 'the native walker is not built (npm run build)' : false;

test('a file looked into where it lies (KeyedFile) gives what KeyedJson gives of its bytes: records, prefixes, replacements', { skip: skipNative }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'homecloud-keyed-'));
  try {
    const path = join(dir, 'records.json');
    const generator = { '/usr/local/opt/initd/generators/dns': { type: 'file', mode: '0755', sha256: '1'.repeat(64) } } as ManifestEntries;
    const renders: RenderCache = { '/repo/a.m4.conf': ['k1:f1', 'd1', false, false, '', ['/repo/[x].m4'], ['ENV_A]']] };
    const texts = [
      bytesOf(manifestOf(tricky)),
      bytesOf(manifestOf(sortEntries({ ...tricky, ...generator }))),
      bytesOf(renders),
      Buffer.from('{"entries":{"/a":{"type":"di'),
      Buffer.from('{"entries":{"/a":"text","/b":{"type":di}}}'),
    ];
    const keys = [
      ...Object.keys(tricky),
      ...Object.keys(renders),
      '/etc/nope',
      '/a',
      '/b',
      '/usr/local/opt/initd',
      // The end of another key: /etc/quote"/b.conf\ is written "/etc/quote\"/b.conf\\":, where this key's "/b.conf\\": follows a backslash.
      '/b.conf\\',
      `/${'x'.repeat(5000)}`,
    ];
    const prefixes = ['/usr/local/opt/initd/generators/', '/etc/', '/et', '/nope/', '"', ''];
    const changes: Record<string, unknown>[] = [
      { '/etc/a.conf': { type: 'file', mode: '0644', sha256: '9'.repeat(64) } },
      { '/etc/b.conf\\': { type: 'file', mode: '0755', sha256: 'f'.repeat(64) }, '/etc/link': { type: 'link', target: '../x}' } },
      { '/repo/a.m4.conf': ['k3:f3', 'd3', false, true, '-', [], []] },
      { '/etc/new': { type: 'dir', mode: '0755' } },
    ];
    for (const bytes of texts) {
      writeFileSync(path, bytes);
      const inPlace = KeyedFile.of(path)!;
      const inMemory = new KeyedJson(bytes);
      for (const key of keys) assert.deepEqual(inPlace.get(key), inMemory.get(key), key.slice(0, 40));
      for (const prefix of prefixes) assert.equal(inPlace.hasKeyUnder(prefix), inMemory.hasKeyUnder(prefix), prefix);
      for (const change of changes) {
        const found = inPlace.replacements(change);
        assert.deepEqual(found, inMemory.replacements(change), Object.keys(change).join());
        if (found) assert.deepEqual(inPlace.replaced(found), inMemory.replaced(found));
      }
      assert.equal(inPlace.held, undefined);
    }
    // Gone: no record, no key.
    rmSync(path);
    const gone = KeyedFile.of(path)!;
    assert.equal(gone.get('/etc/a.conf'), undefined);
    assert.equal(gone.hasKeyUnder('/etc/'), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
