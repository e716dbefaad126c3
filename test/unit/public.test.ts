// Public material machines publish (certificates, keys, addresses): what may be published, and m5_public in templates.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { checkPublic, storePublic } from '../../src/facts/public.ts';
import { HomecloudError } from '../../src/load/errors.ts';
import { buildOne, makeRepo, preludeOnlyBase, readTree, repoPaths, treeFile } from '../helpers/repo.ts';

const scratch = mkdtempSync(join(tmpdir(), 'homecloud-public-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A self-signed certificate whose subject is CN=<name>, made as a machine makes its own. */
function certificate(name: string): string {
  const result = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      join(scratch, `${name}.key`),
      '-days',
      '1',
      '-subj',
      `/CN=${name}`,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(result.status, 0, result.stderr);
  return result.stdout;
}

function refusal(machine: string, name: string, content: string): HomecloudError {
  try {
    checkPublic(machine, name, content);
  } catch (error) {
    assert.ok(error instanceof HomecloudError, String(error));
    return error;
  }
  assert.fail(`${name} should be refused`);
}

test('a machine may publish PEM blocks, base64 lines and its addresses', () => {
  checkPublic('nas', 'journal.crt', certificate('nas'));
  checkPublic('nas', 'wireguard.pub', 'aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28=\n');
  checkPublic('nas', 'addresses', '10.0.0.5\nfd00::5\n');
});

test('anything else is refused, naming the machine and the item: m4 or shell text, a certificate for another machine, a bad address, a bad name, too much', () => {
  assert.match(
    refusal('nas', 'journal.crt', 'm4_syscmd(touch /tmp/x)\n').message,
    /the public journal\.crt that nas published holds the line "m4_syscmd\(touch \/tmp\/x\)": only PEM blocks/,
  );
  assert.match(
    refusal('nas', 'journal.crt', certificate('media')).message,
    /is a certificate for "media": a machine's certificate must name the machine itself/,
  );
  assert.match(refusal('nas', 'journal.crt', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n').message, /is not a certificate/);
  assert.match(refusal('nas', 'addresses', '10.0.0.5\n$(reboot)\n').message, /holds "\$\(reboot\)", which is not an IP address/);
  assert.match(refusal('nas', '../etc', 'AAAA\n').message, /has a name homecloud does not read/);
  assert.match(refusal('nas', 'big.pub', `${'A'.repeat(100)}\n`.repeat(700)).message, /is larger than 64 KiB/);
  assert.equal(refusal('nas', 'x.pub', 'A B\n').where?.file, 'nas');
});

test("templates read every machine's public material with m5_public, one machine's with m5_public_of, and lines as items with m5_public_lines", async () => {
  const nas = certificate('nas');
  const media = certificate('media');
  const root = makeRepo({
    ...preludeOnlyBase,
    'machines/m/usr/local/opt/initd/layers/10.txt': '+ a\n',
    'layers/a/etc/all.m4.pem': 'm5_public([journal.crt])',
    'layers/a/etc/one.m4.pem': 'm5_public_of([media], [journal.crt])',
    'layers/a/etc/none.m4.txt': '[none:]m5_public([nothing])[:end]\n',
    'layers/a/etc/addresses.m4.txt': 'm5_for([A], [allow A\n], m5_public_lines([addresses]))',
    'layers/a/etc/plain.m4.txt': 'plain ENV_MACHINE\n',
    'layers/a/etc/publishers.m4.txt': 'm5_for([M], [M;], m5_publishers([journal.crt]))\n',
  });
  const repo = repoPaths(root);
  storePublic(
    repo,
    'nas',
    new Map([
      ['journal.crt', nas],
      ['addresses', '10.0.0.5\n'],
    ]),
  );
  storePublic(
    repo,
    'media',
    new Map([
      ['journal.crt', media],
      ['addresses', '10.0.0.6\nfd00::6\n'],
    ]),
  );
  const built = await buildOne(root, 'm');
  assert.equal(built.status, 'built', built.error?.toString());
  assert.equal(readTree(root, 'm', '/etc/all.pem'), media + nas, 'by machine name: media, then nas');
  assert.equal(readTree(root, 'm', '/etc/one.pem'), media);
  assert.equal(readTree(root, 'm', '/etc/none.txt'), 'none::end\n');
  assert.equal(readTree(root, 'm', '/etc/addresses.txt'), 'allow 10.0.0.6\nallow fd00::6\nallow 10.0.0.5\n');
  assert.equal(readTree(root, 'm', '/etc/publishers.txt'), 'media;nas;\n');

  // New public material: the next build picks it up, rendering again only the templates that read it.
  const plainBefore = statSync(treeFile(root, 'm', '/etc/plain.txt')).mtimeMs;
  const renders = () => JSON.parse(readFileSync(join(root, 'var/build/m/renders.json'), 'utf8')) as Record<string, unknown[]>;
  const plainRecord = JSON.stringify(renders()[join(root, 'layers/a/etc/plain.m4.txt')]);
  assert.equal(
    storePublic(
      repo,
      'nas',
      new Map([
        ['journal.crt', nas],
        ['addresses', '10.0.0.7\n'],
      ]),
    ),
    true,
    'a change is said',
  );
  assert.equal(
    storePublic(
      repo,
      'nas',
      new Map([
        ['journal.crt', nas],
        ['addresses', '10.0.0.7\n'],
      ]),
    ),
    false,
    'the same again is no change',
  );
  const again = await buildOne(root, 'm');
  assert.equal(again.status, 'built');
  assert.equal(readTree(root, 'm', '/etc/addresses.txt'), 'allow 10.0.0.6\nallow fd00::6\nallow 10.0.0.7\n');
  assert.equal(statSync(treeFile(root, 'm', '/etc/plain.txt')).mtimeMs, plainBefore);
  assert.equal(JSON.stringify(renders()[join(root, 'layers/a/etc/plain.m4.txt')]), plainRecord, 'the plain template was not rendered again');
  assert.equal((await buildOne(root, 'm')).status, 'up-to-date');

  // A machine that stops publishing an item: it goes from the others' trees.
  storePublic(repo, 'media', new Map([['addresses', '10.0.0.6\n']]));
  await buildOne(root, 'm');
  assert.equal(readTree(root, 'm', '/etc/one.pem'), '');
  assert.equal(readTree(root, 'm', '/etc/publishers.txt'), 'nas;\n');
});
