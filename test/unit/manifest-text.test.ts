// Looking into a manifest file without parsing it whole, and writing it with entries replaced.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManifestText } from '../../src/build/manifest-text.ts';
import { sortEntries, type Manifest, type ManifestEntries } from '../../src/build/manifest.ts';

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
  return { format: 1, machine: 'm', owner: 'root:root', entries, packages: { install: ['curl'], purge: [] } };
}

const bytesOf = (manifest: Manifest) => Buffer.from(JSON.stringify(manifest) + '\n');

test('every entry is found as JSON.parse finds it, in any order; a missing one is undefined', () => {
  const text = new ManifestText(bytesOf(manifestOf(tricky)));
  for (const dest of [...Object.keys(tricky)].reverse()) assert.deepEqual(text.entry(dest), tricky[dest], dest);
  for (const dest of Object.keys(tricky)) assert.deepEqual(text.entry(dest), tricky[dest], dest);
  assert.equal(text.entry('/etc/nope'), undefined);
  assert.equal(text.entry('/usr/local/opt/initd'), undefined);
  assert.equal(text.count(), Object.keys(tricky).length);
});

test('entries replaced: byte for byte what JSON.stringify of the changed manifest gives', () => {
  const text = new ManifestText(bytesOf(manifestOf(tricky)));
  const changes: ManifestEntries = {
    '/etc/b.conf\\': { type: 'file', mode: '0755', sha256: 'f'.repeat(64) },
    '/etc/a.conf': { type: 'file', mode: '0600', sha256: '0'.repeat(64), secret: true },
    '/etc/link': { type: 'link', target: '../x}' },
  };
  const expected = bytesOf(manifestOf({ ...tricky, ...changes }));
  assert.deepEqual(text.withEntries(changes), expected);
  assert.deepEqual(text.withEntries({}), bytesOf(manifestOf(tricky)));
  assert.equal(text.withEntries({ '/etc/new': { type: 'dir', mode: '0755' } }), undefined);
});

test('generators are found by their directory, not by the directory alone', () => {
  assert.equal(new ManifestText(bytesOf(manifestOf(tricky))).hasPathUnder('/usr/local/opt/initd/generators/'), false);
  const withGenerator = { ...tricky, '/usr/local/opt/initd/generators/dns': { type: 'file', mode: '0755', sha256: '1'.repeat(64) } } as ManifestEntries;
  assert.equal(new ManifestText(bytesOf(manifestOf(sortEntries(withGenerator)))).hasPathUnder('/usr/local/opt/initd/generators/'), true);
});

test('text that is not a builder manifest gives no entry', () => {
  assert.equal(new ManifestText(Buffer.from('{"entries":{"/a":{"type":"dir","x":{}}}}')).entry('/a'), undefined);
  assert.equal(new ManifestText(Buffer.from('{"entries":{"/a":{"type":"di')).entry('/a'), undefined);
  assert.equal(new ManifestText(Buffer.from('{"entries":{"/a":{"type":di}}}')).entry('/a'), undefined);
});
