// FORMAT.md section 7: declared links, packages and triggers under usr/local/opt/initd/.
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readlinkSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseLinks } from '../../src/build/declared.ts';
import { buildError, buildOne, layerList, makeRepo, manifestOf, modeOf, preludeOnlyBase, readTree, treeFile, writeFiles } from '../helpers/repo.ts';

const links = 'machines/m/usr/local/opt/initd/links';
const systemd = '/usr/local/lib/systemd/system';

test('links/*.txt: each "<path> <target>" line makes a symlink; # lines and blank lines are ignored', async () => {
  const root = makeRepo({
    [`${links}/10-units.txt`]: [
      '# masks and instances',
      '',
      `${systemd}/apt-daily.timer /dev/null`,
      `${systemd}/multi-user.target.wants/x@a.service\t../x@.service`,
      `   /etc/spaced    \t  /srv/target  `,
      '',
    ].join('\n'),
  });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  const masked = treeFile(root, 'm', `${systemd}/apt-daily.timer`);
  assert.ok(lstatSync(masked).isSymbolicLink());
  assert.equal(readlinkSync(masked), '/dev/null');
  assert.equal(readlinkSync(treeFile(root, 'm', `${systemd}/multi-user.target.wants/x@a.service`)), '../x@.service');
  assert.equal(readlinkSync(treeFile(root, 'm', '/etc/spaced')), '/srv/target');
  const entries = manifestOf(root, 'm').entries;
  assert.deepEqual(entries[`${systemd}/apt-daily.timer`], { type: 'link', target: '/dev/null' });
  assert.deepEqual(entries[`${systemd}/multi-user.target.wants`], { type: 'dir', mode: '0755' }, 'missing parents are created as 0755 directories');
  assert.equal(modeOf(treeFile(root, 'm', `${systemd}/multi-user.target.wants`)), 0o755);
  assert.equal(readTree(root, 'm', '/usr/local/opt/initd/links/10-units.txt').startsWith('# masks'), true, 'the list itself is deployed');
});

test('parseLinks: the first field is the link, the rest of the line its target; paths are normalised', () => {
  assert.deepEqual(
    parseLinks('/a//b/ target with spaces\n# /x y\n', 'f.txt').map(({ path, target, line }) => ({ path, target, line })),
    [{ path: '/a/b', target: 'target with spaces', line: 1 }],
  );
});

test('declared links come from selected layers and the machine, not from other layers; subdirectories are not read', async () => {
  const root = makeRepo({
    ...layerList('a'),
    'layers/a/usr/local/opt/initd/links/a.txt': '/etc/from-a /dev/null\n',
    'layers/other/usr/local/opt/initd/links/o.txt': '/etc/from-other /dev/null\n',
    [`${links}/m.txt`]: '/etc/from-m /dev/null\n',
    [`${links}/sub/deep.txt`]: '/etc/from-deep /dev/null\n',
    [`${links}/notes.md`]: '/etc/from-md /dev/null\n',
  });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  const entries = manifestOf(root, 'm').entries;
  assert.equal(entries['/etc/from-a']?.type, 'link');
  assert.equal(entries['/etc/from-m']?.type, 'link');
  for (const absent of ['/etc/from-other', '/etc/from-deep', '/etc/from-md']) assert.equal(entries[absent], undefined, absent);
});

test('a links list may be a template (links/*.m4.txt)', async () => {
  const root = makeRepo({ [`${links}/10.m4.txt`]: `${systemd}/multi-user.target.wants/agent@ENV_MACHINE.service ../agent@.service\n` });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(readlinkSync(treeFile(root, 'm', `${systemd}/multi-user.target.wants/agent@m.service`)), '../agent@.service');
});

test('changing a line changes the link, removing the line or the file removes it (improvement)', async () => {
  const root = makeRepo({ [`${links}/10.txt`]: '/etc/a /dev/null\n/etc/b /srv/b\n' });
  await buildOne(root, 'm');
  assert.equal(readlinkSync(treeFile(root, 'm', '/etc/a')), '/dev/null');

  writeFiles(root, { [`${links}/10.txt`]: '/etc/a /srv/changed\n/etc/b /srv/b\n' });
  assert.equal((await buildOne(root, 'm')).status, 'built');
  assert.equal(readlinkSync(treeFile(root, 'm', '/etc/a')), '/srv/changed');

  writeFiles(root, { [`${links}/10.txt`]: '/etc/b /srv/b\n' });
  await buildOne(root, 'm');
  assert.equal(existsSync(treeFile(root, 'm', '/etc/a')) || isLink(treeFile(root, 'm', '/etc/a')), false);
  assert.equal(manifestOf(root, 'm').entries['/etc/a'], undefined);
  assert.equal(readlinkSync(treeFile(root, 'm', '/etc/b')), '/srv/b');

  rmSync(join(root, links, '10.txt'));
  await buildOne(root, 'm');
  assert.equal(isLink(treeFile(root, 'm', '/etc/b')), false);
  assert.equal(manifestOf(root, 'm').entries['/etc/b'], undefined);
});

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

test('a links line that is malformed or not absolute is an error naming the file and line', async () => {
  for (const line of ['/etc/only-one-field', 'relative/path /dev/null', '/etc/../x /dev/null', '/ /dev/null']) {
    const root = makeRepo({ [`${links}/10.txt`]: `# ok\n/etc/ok /dev/null\n${line}\n` });
    const error = await buildError(root);
    assert.deepEqual(error.where, { file: `${links}/10.txt`, line: 3 }, line);
  }
});

test('a declared link where a file is deployed is an error naming the line and the file', async () => {
  const root = makeRepo({ ...layerList('a'), 'layers/a/etc/x.conf': 'x\n', [`${links}/10.txt`]: '\n/etc/x.conf /dev/null\n' });
  const error = await buildError(root);
  assert.deepEqual(error.where, { file: `${links}/10.txt`, line: 2 });
  assert.match(error.message, /layers\/a\/etc\/x\.conf/);
});

test('a declared link under a deployed file is an error naming the line and the file', async () => {
  const root = makeRepo({ ...layerList('a'), 'layers/a/etc/x.conf': 'x\n', [`${links}/10.txt`]: '/etc/x.conf/inner /dev/null\n' });
  const error = await buildError(root);
  assert.deepEqual(error.where, { file: `${links}/10.txt`, line: 1 });
  assert.match(error.message, /layers\/a\/etc\/x\.conf/);
});

test('one link declared twice: same target is fine, different targets an error naming both lines', async () => {
  const same = makeRepo({ [`${links}/10.txt`]: '/etc/l /dev/null\n', [`${links}/20.txt`]: '/etc/l /dev/null\n' });
  assert.equal((await buildOne(same, 'm')).status, 'built');
  const different = makeRepo({ [`${links}/10.txt`]: '/etc/l /dev/null\n', [`${links}/20.txt`]: '\n/etc/l /srv/other\n' });
  const error = await buildError(different);
  assert.deepEqual(error.where, { file: `${links}/20.txt`, line: 2 });
  assert.match(error.message, /10\.txt:1/);
});

test('packages/*.txt: "+ pkg" installs, "- pkg" purges, other lines are ignored; templates too', async () => {
  const root = makeRepo({
    ...preludeOnlyBase,
    ...layerList('a'),
    'layers/a/usr/local/opt/initd/packages/a.txt': '# tools\n+ curl\n+ nginx\n- exim4\n+nospace\n+  two-spaces\n* star\nplain\n',
    'layers/other/usr/local/opt/initd/packages/o.txt': '+ unselected\n',
    'machines/m/usr/local/opt/initd/packages/m.m4.txt': '+ agent-ENV_MACHINE\n+ curl\n',
  });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.deepEqual(manifestOf(root, 'm').packages, { install: ['agent-m', 'curl', 'nginx'], purge: ['exim4'] });
  assert.ok(existsSync(treeFile(root, 'm', '/usr/local/opt/initd/packages/m.txt')), 'the lists are deployed');
});

test('no packages means empty lists in the manifest', async () => {
  const root = makeRepo({ ...preludeOnlyBase, 'machines/m/etc/x': '' });
  await buildOne(root, 'm');
  assert.deepEqual(manifestOf(root, 'm').packages, { install: [], purge: [] });
});

test('a package both installed and purged is an error naming both lines', async () => {
  const root = makeRepo({
    ...layerList('a'),
    'layers/a/usr/local/opt/initd/packages/a.txt': '+ nginx\n',
    'machines/m/usr/local/opt/initd/packages/m.txt': '# no\n- nginx\n',
  });
  const error = await buildError(root);
  assert.deepEqual(error.where, { file: 'machines/m/usr/local/opt/initd/packages/m.txt', line: 2 });
  assert.match(error.message, /layers\/a\/usr\/local\/opt\/initd\/packages\/a\.txt:1/);
});

test('an invalid package name is an error naming the file and line', async () => {
  const root = makeRepo({ 'machines/m/usr/local/opt/initd/packages/m.txt': '+ ok\n+ Bad_Name\n' });
  const error = await buildError(root);
  assert.deepEqual(error.where, { file: 'machines/m/usr/local/opt/initd/packages/m.txt', line: 2 });
});

test('triggers/*.txt: valid "<glob> <action> <unit>" lines build', async () => {
  const root = makeRepo({
    'machines/m/usr/local/opt/initd/triggers/t.txt':
      '# app\n/usr/local/opt/app/** restart app.service\n/etc/nginx/*\treload nginx.service\n/a reload-or-restart a.service\n/b start b.service\n',
  });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.ok(existsSync(treeFile(root, 'm', '/usr/local/opt/initd/triggers/t.txt')));
});

test('triggers: wrong field count, unknown action or relative glob is an error naming the file and line', async () => {
  for (const [line, message] of [
    ['/a restart', /expected/],
    ['/a restart a.service extra', /expected/],
    ['/a bounce a.service', /unknown trigger action "bounce"/],
    ['a/** restart a.service', /not an absolute path pattern/],
  ] as const) {
    const root = makeRepo({ 'machines/m/usr/local/opt/initd/triggers/t.txt': `/ok reload ok.service\n\n${line}\n` });
    const error = await buildError(root);
    assert.deepEqual(error.where, { file: 'machines/m/usr/local/opt/initd/triggers/t.txt', line: 3 }, line);
    assert.match(error.message, message);
  }
});

test('the initd Makefile and makelib are deployed like other files', async () => {
  const root = makeRepo({ 'machines/m/usr/local/opt/initd/Makefile': 'all:\n\ttrue\n', 'machines/m/usr/local/opt/initd/makelib/x.mk': 'X=1\n' });
  await buildOne(root, 'm');
  assert.equal(readTree(root, 'm', '/usr/local/opt/initd/Makefile'), 'all:\n\ttrue\n');
  assert.equal(readTree(root, 'm', '/usr/local/opt/initd/makelib/x.mk'), 'X=1\n');
});
