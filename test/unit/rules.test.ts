// FORMAT.md sections 1 and 4: output names, templates, "!" links, symlinks, .pin and modes.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { isTemplate, outputName, ruleFor } from '../../src/build/rules.ts';
import { buildError, buildOne, cliPath, layerList, makeRepo, manifestOf, modeOf, readTree, treeFile, writeFiles } from '../helpers/repo.ts';

test('output names: every ".m4." becomes "." and a leading "!" is dropped', () => {
  assert.equal(outputName('x.m4.conf'), 'x.conf');
  assert.equal(outputName('.m4.iftoprc'), '.iftoprc');
  assert.equal(outputName('!secret.env'), 'secret.env');
  assert.equal(outputName('a.m4.b.m4.c'), 'a.b.c');
  assert.equal(outputName('!x.m4.conf'), 'x.conf');
  assert.equal(outputName('foo.m4@.service'), 'foo.m4@.service');
  assert.equal(outputName('plain.m4'), 'plain.m4');
  assert.equal(outputName('a!b'), 'a!b');
});

test('only a ".m4." infix makes a template', () => {
  assert.equal(isTemplate('x.m4.conf'), true);
  assert.equal(isTemplate('.m4.iftoprc'), true);
  assert.equal(isTemplate('foo.m4@.service'), false);
  assert.equal(isTemplate('prelude.m4'), false);
  assert.equal(isTemplate('m4.conf'), false);
  assert.equal(ruleFor('x.m4.conf', true), 'template');
  assert.equal(ruleFor('!x', true), 'deref');
  assert.equal(ruleFor('!x', false), 'deref');
  assert.equal(ruleFor('x', true), 'link');
  assert.equal(ruleFor('x', false), 'copy');
});

test('built names: templates renamed and rendered, "!" dropped, foo.m4@.service copied as is', async () => {
  const root = makeRepo({
    ...layerList('a'),
    'layers/a/etc/x.m4.conf': 'host ENV_MACHINE\n',
    'layers/a/root/.m4.iftoprc': 'ENV_MACHINE\n',
    'layers/a/etc/!plain.env': 'A=1\n',
    'layers/a/usr/local/lib/systemd/system/foo.m4@.service': 'ExecStart=/bin/echo ENV_MACHINE %i\n',
  });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(readTree(root, 'm', '/etc/x.conf'), 'host m\n');
  assert.equal(readTree(root, 'm', '/root/.iftoprc'), 'm\n');
  assert.equal(readTree(root, 'm', '/etc/plain.env'), 'A=1\n');
  assert.equal(readTree(root, 'm', '/usr/local/lib/systemd/system/foo.m4@.service'), 'ExecStart=/bin/echo ENV_MACHINE %i\n');
  for (const gone of ['/etc/x.m4.conf', '/root/.m4.iftoprc', '/etc/!plain.env']) assert.equal(existsSync(treeFile(root, 'm', gone)), false, gone);
});

test('a template output is a regular file with the source permission bits (improvement: executable kept)', async () => {
  const root = makeRepo({
    ...layerList('a'),
    'layers/a/usr/local/bin/hello.m4.sh': { content: '#!/bin/sh\necho ENV_MACHINE\n', mode: 0o755 },
    'layers/a/etc/private.m4.conf': { content: 'ENV_MACHINE\n', mode: 0o600 },
  });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(readTree(root, 'm', '/usr/local/bin/hello.sh'), '#!/bin/sh\necho m\n');
  assert.equal(modeOf(treeFile(root, 'm', '/usr/local/bin/hello.sh')), 0o755);
  assert.equal(modeOf(treeFile(root, 'm', '/etc/private.conf')), 0o600);
  assert.equal(manifestOf(root, 'm').entries['/usr/local/bin/hello.sh']!.type, 'file');
  assert.deepEqual({ ...manifestOf(root, 'm').entries['/etc/private.conf'], sha256: '' }, { type: 'file', mode: '0600', sha256: '' });
});

test("a symlinked template renders its target's content into a regular file with the target's bits", async () => {
  const root = makeRepo({
    ...layerList('a'),
    'layers/a/usr/local/share/tmpl/unit.txt': { content: 'Description=ENV_MACHINE\n', mode: 0o750 },
    'layers/a/etc/unit.m4.conf': { link: '../usr/local/share/tmpl/unit.txt' },
  });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  const out = treeFile(root, 'm', '/etc/unit.conf');
  assert.ok(lstatSync(out).isFile(), 'a regular file, not a link');
  assert.equal(readTree(root, 'm', '/etc/unit.conf'), 'Description=m\n');
  assert.equal(modeOf(out), 0o750);
});

test('a "!" link is dereferenced: a regular file holding the target content (secrets from facts/ are marked)', async () => {
  const root = makeRepo({
    ...layerList('a'),
    'facts/m.secret': { content: 'TOKEN=s3cr3t\n', mode: 0o600 },
    'machines/m/usr/local/etc/default/!app.env': { link: '../../../../../../facts/m.secret' },
    'layers/a/usr/local/share/doc/README': 'read me\n',
    'layers/a/usr/local/opt/app/!about.txt': { link: '../../share/doc/README' },
  });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  const secret = treeFile(root, 'm', '/usr/local/etc/default/app.env');
  assert.ok(lstatSync(secret).isFile());
  assert.equal(readTree(root, 'm', '/usr/local/etc/default/app.env'), 'TOKEN=s3cr3t\n');
  assert.equal(modeOf(secret), 0o600);
  const entries = manifestOf(root, 'm').entries;
  assert.equal((entries['/usr/local/etc/default/app.env'] as { secret?: boolean }).secret, true);
  assert.ok(lstatSync(treeFile(root, 'm', '/usr/local/opt/app/about.txt')).isFile());
  assert.equal(readTree(root, 'm', '/usr/local/opt/app/about.txt'), 'read me\n');
  assert.equal((entries['/usr/local/opt/app/about.txt'] as { secret?: boolean }).secret, undefined);
});

test("a file that holds a secret is root's alone, whatever its source's mode; a rebuild after the secret changes keeps it so", async () => {
  const root = makeRepo({
    ...layerList('a'),
    'facts/m.env': 'ENV_TOKEN=s3cr3t\n',
    'layers/a/usr/local/etc/app/token.m4.env': { content: 'TOKEN=ENV_TOKEN\n', mode: 0o644 },
    'layers/a/usr/local/etc/app/plain.m4.env': { content: 'MACHINE=ENV_MACHINE\n', mode: 0o644 },
    'layers/a/usr/local/etc/app/!linked': { link: '../../../../../../facts/m.env' },
  });
  for (const secret of ['s3cr3t', 'an0ther']) {
    writeFiles(root, { 'facts/m.env': `ENV_TOKEN=${secret}\n` });
    const result = await buildOne(root, 'm');
    assert.equal(result.status, 'built', result.error?.toString());
    assert.equal(readTree(root, 'm', '/usr/local/etc/app/token.env'), `TOKEN=${secret}\n`);
    const entries = manifestOf(root, 'm').entries;
    for (const path of ['/usr/local/etc/app/token.env', '/usr/local/etc/app/linked']) {
      assert.equal(modeOf(treeFile(root, 'm', path)), 0o600, path);
      assert.deepEqual([(entries[path] as { mode: string }).mode, (entries[path] as { secret?: boolean }).secret], ['0600', true], path);
    }
    assert.equal(modeOf(treeFile(root, 'm', '/usr/local/etc/app/plain.env')), 0o644);
  }
});

test('a dangling "!" link is an error naming the link', async () => {
  const root = makeRepo({ ...layerList('a'), 'layers/a/etc/!secret.env': { link: '../../../facts/missing.env' } });
  const error = await buildError(root);
  assert.equal(error.where?.file, 'layers/a/etc/!secret.env');
  assert.match(error.toString(), /^layers\/a\/etc\/!secret\.env: dangling link/);
  assert.match(error.message, /facts\/missing\.env/);
});

test('a "!" link loop is an error naming the link and saying it is a loop', async () => {
  const root = makeRepo({ ...layerList('a'), 'layers/a/etc/!a.env': { link: '!b.env' }, 'layers/a/etc/!b.env': { link: '!a.env' } });
  const error = await buildError(root);
  assert.match(error.where!.file, /^layers\/a\/etc\/!(a|b)\.env$/);
  assert.match(error.message, /too many levels of symbolic links/);
});

test('a "!" link to a directory is an error naming the link', async () => {
  const root = makeRepo({ ...layerList('a'), 'layers/a/etc/sub/file': 'x\n', 'layers/a/etc/!dir': { link: 'sub' } });
  const error = await buildError(root);
  assert.equal(error.where?.file, 'layers/a/etc/!dir');
  assert.match(error.message, /not a regular file/);
});

test('a dangling symlinked template is an error naming the link', async () => {
  const root = makeRepo({ ...layerList('a'), 'layers/a/etc/x.m4.conf': { link: 'nowhere.txt' } });
  const error = await buildError(root);
  assert.equal(error.where?.file, 'layers/a/etc/x.m4.conf');
});

test('other symlinks are kept with their target text unchanged, dangling or not', async () => {
  const root = makeRepo({
    ...layerList('a'),
    'layers/a/usr/local/lib/systemd/system/x.service': '[Unit]\n',
    'layers/a/usr/local/lib/systemd/system/multi-user.target.wants/x.service': { link: '../x.service' },
    'layers/a/etc/absolute': { link: '/etc/hostname' },
    'layers/a/etc/dangling': { link: 'no/such/file' },
  });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  const wants = treeFile(root, 'm', '/usr/local/lib/systemd/system/multi-user.target.wants/x.service');
  assert.ok(lstatSync(wants).isSymbolicLink());
  assert.equal(readlinkSync(wants), '../x.service');
  assert.equal(readlinkSync(treeFile(root, 'm', '/etc/absolute')), '/etc/hostname');
  assert.equal(readlinkSync(treeFile(root, 'm', '/etc/dangling')), 'no/such/file');
  assert.deepEqual(manifestOf(root, 'm').entries['/etc/dangling'], { type: 'link', target: 'no/such/file' });
});

test('other files are copied with their permission bits', async () => {
  const modes = { exec: 0o755, private: 0o600, group: 0o640, readonly: 0o444, setgid: 0o2755 };
  const files = Object.fromEntries(Object.entries(modes).map(([name, mode]) => [`layers/a/usr/local/bin/${name}`, { content: `${name}\n`, mode }]));
  const root = makeRepo({ ...layerList('a'), ...files });
  for (const [name, mode] of Object.entries(modes)) chmodSync(join(root, 'layers/a/usr/local/bin', name), mode);
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  for (const [name, mode] of Object.entries(modes)) {
    assert.equal(modeOf(treeFile(root, 'm', `/usr/local/bin/${name}`)), mode, name);
    assert.equal(readTree(root, 'm', `/usr/local/bin/${name}`), `${name}\n`);
    assert.equal((manifestOf(root, 'm').entries[`/usr/local/bin/${name}`] as { mode: string }).mode, mode.toString(8).padStart(4, '0'));
  }
});

test('every file is deployed, dot-files and empty .gitignore placeholders included', async () => {
  const root = makeRepo({
    ...layerList('a'),
    'layers/a/root/.bashrc': 'alias l=ls\n',
    'layers/a/var/lib/local/app/.gitignore': '',
    'layers/a/.hidden/.x': 'x',
  });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(readTree(root, 'm', '/root/.bashrc'), 'alias l=ls\n');
  assert.equal(readTree(root, 'm', '/var/lib/local/app/.gitignore'), '');
  assert.equal(readTree(root, 'm', '/.hidden/.x'), 'x');
});

test('a .pin file sets the sticky bit on its directory (01755), and is deployed itself', async () => {
  const root = makeRepo({
    ...layerList('a', 'b'),
    'layers/a/var/lib/local/state/.pin': '',
    'layers/b/var/lib/local/state/data': 'd\n',
  });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(modeOf(treeFile(root, 'm', '/var/lib/local/state')), 0o1755);
  assert.equal(modeOf(treeFile(root, 'm', '/var/lib/local')), 0o755, 'only the directory holding .pin');
  assert.ok(existsSync(treeFile(root, 'm', '/var/lib/local/state/.pin')));
  const entries = manifestOf(root, 'm').entries;
  assert.deepEqual(entries['/var/lib/local/state'], { type: 'dir', mode: '1755' });
  assert.deepEqual(entries['/var/lib/local'], { type: 'dir', mode: '0755' });
});

test('directories are 0755 whatever the source directory modes', async () => {
  const root = makeRepo({
    ...layerList('a'),
    'layers/a/srv/closed/f': 'f\n',
    'layers/a/srv/open/f': 'f\n',
    'layers/a/srv/sticky/f': 'f\n',
    'layers/a/srv/setgid/f': 'f\n',
  });
  chmodSync(join(root, 'layers/a/srv/closed'), 0o700);
  chmodSync(join(root, 'layers/a/srv/open'), 0o777);
  chmodSync(join(root, 'layers/a/srv/sticky'), 0o1777);
  chmodSync(join(root, 'layers/a/srv/setgid'), 0o2775);
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  for (const dir of ['/srv', '/srv/closed', '/srv/open', '/srv/sticky', '/srv/setgid']) assert.equal(modeOf(treeFile(root, 'm', dir)), 0o755, dir);
  assert.equal(modeOf(join(root, 'var/build/m/tree')), 0o755);
});

test("the operator's umask never leaks into directory or file modes (improvement)", () => {
  for (const umask of ['077', '000', '027']) {
    const root = makeRepo({
      ...layerList('a'),
      'layers/a/srv/app/.pin': '',
      'layers/a/srv/app/conf/app.conf': { content: 'c\n', mode: 0o644 },
      'layers/a/srv/x.m4.sh': { content: 'ENV_MACHINE\n', mode: 0o755 },
    });
    const run = spawnSync('sh', ['-c', `umask ${umask} && exec "$0" "$@"`, process.execPath, cliPath, '-C', root, 'build'], {
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1' },
    });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(modeOf(join(root, 'var/build/m/tree')), 0o755, `umask ${umask}: tree`);
    assert.equal(modeOf(treeFile(root, 'm', '/srv')), 0o755, `umask ${umask}: /srv`);
    assert.equal(modeOf(treeFile(root, 'm', '/srv/app')), 0o1755, `umask ${umask}: pinned /srv/app`);
    assert.equal(modeOf(treeFile(root, 'm', '/srv/app/conf')), 0o755, `umask ${umask}: /srv/app/conf`);
    assert.equal(modeOf(treeFile(root, 'm', '/srv/app/conf/app.conf')), 0o644, `umask ${umask}: file`);
    assert.equal(modeOf(treeFile(root, 'm', '/srv/x.sh')), 0o755, `umask ${umask}: template`);
  }
});

test('paths with spaces and non-ASCII UTF-8 characters are deployed and rendered (improvement)', async () => {
  const root = makeRepo({
    ...layerList('a'),
    'layers/a/usr/local/share/my docs/résumé ü 日本.txt': 'doc\n',
    'layers/a/usr/local/etc/my app.m4.conf': 'name ENV_MACHINE\n',
    'layers/a/usr/local/etc/!über link': { link: '../share/my docs/résumé ü 日本.txt' },
    'layers/a/usr/local/etc/kept link': { link: '../share/my docs/résumé ü 日本.txt' },
  });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(readTree(root, 'm', '/usr/local/share/my docs/résumé ü 日本.txt'), 'doc\n');
  assert.equal(readTree(root, 'm', '/usr/local/etc/my app.conf'), 'name m\n');
  assert.equal(readTree(root, 'm', '/usr/local/etc/über link'), 'doc\n');
  assert.equal(readlinkSync(treeFile(root, 'm', '/usr/local/etc/kept link')), '../share/my docs/résumé ü 日本.txt');
  assert.deepEqual(readdirSync(treeFile(root, 'm', '/usr/local/share/my docs')), ['résumé ü 日本.txt']);
});

test('a source that is not a file, directory or symlink (a FIFO) is an error naming it', async (t) => {
  const root = makeRepo({ ...layerList('a'), 'layers/a/etc/keep': '' });
  const fifo = join(root, 'layers/a/etc/pipe');
  if (spawnSync('mkfifo', [fifo]).status !== 0) return t.skip('mkfifo is not available');
  const error = await buildError(root);
  assert.equal(error.where?.file, 'layers/a/etc/pipe');
});

test("a .private file makes the files beside it root's alone (0600, 0700 for executables); not the files below, and diff still shows them", async () => {
  const root = makeRepo({
    ...layerList('a'),
    'layers/a/etc/app/.private': '',
    'layers/a/etc/app/settings.conf': { content: 'x\n', mode: 0o644 },
    'layers/a/etc/app/run': { content: '#!/bin/sh\n', mode: 0o755 },
    'layers/a/etc/app/sub/open.conf': { content: 'y\n', mode: 0o644 },
    'layers/a/etc/app/rendered.m4.conf': { content: 'm=ENV_MACHINE\n', mode: 0o644 },
  });
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  const entries = manifestOf(root, 'm').entries;
  const mode = (path: string) => (entries[path] as { mode: string }).mode;
  assert.deepEqual(['/etc/app/settings.conf', '/etc/app/run', '/etc/app/rendered.conf', '/etc/app/sub/open.conf'].map(mode), ['0600', '0700', '0600', '0644']);
  assert.equal((entries['/etc/app/settings.conf'] as { secret?: true }).secret, undefined, 'private is not secret: its contents may be shown');
  // A change to a file beside it keeps the mode (the quick path hands it to the full plan).
  writeFiles(root, { 'layers/a/etc/app/settings.conf': { content: 'changed\n', mode: 0o644 } });
  assert.equal((await buildOne(root, 'm')).status, 'built');
  assert.equal(mode('/etc/app/settings.conf'), '0600');
  assert.equal(modeOf(treeFile(root, 'm', '/etc/app/settings.conf')), 0o600);
});
