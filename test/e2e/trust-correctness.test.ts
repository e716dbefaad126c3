// A reported success is true: type changes, failures, drift and the small things a user hits.
// After every deploy the machine is checked against its current generation (test/helpers/invariant.ts).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { assertMachineIsItsGeneration } from '../helpers/invariant.ts';
import { cliPath, makeRepo, preludeOnlyBase, writeFiles, type FixtureFile } from '../helpers/repo.ts';
import { sandboxCli, testSandbox } from '../helpers/sandbox.ts';

const { box, skip } = testSandbox('trust');
const greet: Record<string, FixtureFile> = {
  'layers/greet/usr/local/bin/greet': {
    content: '#!/bin/bash\nif [ "${FAIL:-0}" = 1 ]; then echo "greet fails on purpose" >&2; exit 1; fi\nexec sleep infinity\n',
    mode: 0o755,
  },
  'layers/greet/usr/local/lib/systemd/system/greet.service': '[Service]\nExecStart=/usr/local/bin/greet\nEnvironmentFile=/usr/local/etc/default/greet.env\n',
  'layers/greet/usr/local/lib/systemd/system/multi-user.target.wants/greet.service': { link: '../greet.service' },
  'layers/greet/usr/local/etc/default/greet.env': 'FAIL=0\n',
};
const repo = makeRepo({ ...preludeOnlyBase, ...greet, 'machines/m/usr/local/opt/initd/layers/10.txt': '+ greet\n+ t\n', 'layers/t/usr/local/opt/t/.keep': '' });
const cli = sandboxCli(box, repo);
const on = (command: string) => box!.ssh('m', command).stdout;
const holds = (context: string) => assertMachineIsItsGeneration(box!, 'm', context);

/** Deploy and expect success, with the machine exactly its generation afterwards. */
function deploy(context: string, args: string[] = []) {
  const result = cli(['deploy', ...args, 'm']);
  assert.equal(result.status, 0, `${context}: ${result.stdout}${result.stderr}`);
  holds(context);
  return result;
}

/** Replace layer t's tree with these files (paths under /usr/local/opt/t). */
function layerT(files: Record<string, FixtureFile>, emptyDirs: string[] = []) {
  rmSync(join(repo, 'layers/t'), { recursive: true, force: true });
  writeFiles(repo, Object.fromEntries(Object.entries({ '.keep': '', ...files }).map(([path, file]) => [`layers/t/usr/local/opt/t/${path}`, file])));
  for (const dir of emptyDirs) mkdirSync(join(repo, 'layers/t/usr/local/opt/t', dir), { recursive: true });
}

test('first deploy', { skip }, async () => {
  await box!.up(['m']);
  deploy('first deploy');
  assert.equal(on('systemctl is-active greet.service'), 'active');
});

test('every type change leaves the machine equal to its manifest, and nothing is written or removed through a link being replaced', { skip }, () => {
  box!.ssh('m', 'mkdir -p /srv/outside /srv/outside2 && echo keep > /srv/outside/keep && echo keep2 > /srv/outside2/keep2');
  const outside = () => on('find /srv -printf "%p %y\\n" | sort');
  const untouched = outside();
  const states: [string, Record<string, FixtureFile>][] = [
    ['files, directories and links', { a: 'a1\n', 'b/x': 'x\n', c: { link: '/srv/outside' }, d: { link: 'b' }, 'e/f': 'f\n' }],
    [
      'file to directory, directory to file, links to directories to real directories, directory to link',
      { 'a/y': 'y\n', b: 'b\n', 'c/z': 'z\n', 'd/w': 'w\n', e: { link: '/srv/outside2' } },
    ],
    [
      'directories to links, a directory to a file, a link to a dangling link, a link to a directory again',
      { a: { link: '/srv/outside' }, b: { link: '/srv/outside2' }, c: 'c\n', d: { link: '/nowhere' }, 'e/g': 'g\n' },
    ],
    ['back to the first', { a: 'a1\n', 'b/x': 'x\n', c: { link: '/srv/outside' }, d: { link: 'b' }, 'e/f': 'f\n' }],
  ];
  for (const [name, files] of states) {
    layerT(files);
    deploy(name);
    assert.equal(outside(), untouched, `${name}: nothing was written or removed under /srv`);
  }
  // A link homecloud placed that becomes a directory with files: they go into a real directory, and go with it.
  layerT({ c: { link: '/srv/outside' } });
  deploy('a link to /srv');
  layerT({ 'c/new': 'new\n' });
  deploy('the link becomes a directory');
  assert.equal(on('test -L /usr/local/opt/t/c && echo link || echo directory; cat /usr/local/opt/t/c/new'), 'directory\nnew');
  layerT({});
  deploy('the directory is removed');
  assert.equal(outside(), untouched);
  assert.equal(on('ls -A /usr/local/opt/t'), '.keep');
});

test('a failure is never forgotten: the next deploy redoes the changes and restarts since the last commit', { skip }, () => {
  writeFiles(repo, { 'layers/greet/usr/local/etc/default/greet.env': 'FAIL=1\n' });
  const failed = cli(['deploy', 'm']);
  assert.equal(failed.status, 1, failed.stdout);
  assert.match(failed.stderr, /m: unhealthy after the change: greet\.service/);
  // Nothing changed since, but the apply did not commit: the restart is done again, and fails again.
  const again = cli(['deploy', 'm']);
  assert.equal(again.status, 1, again.stdout);
  assert.doesNotMatch(again.stdout, /Nothing to do/);
  assert.match(again.stderr, /unhealthy after the change: greet\.service/);
  const plan = cli(['plan', 'm']);
  assert.match(plan.stdout, /the last apply did not commit/);
  assert.match(plan.stdout, /greet\.service restart: \/usr\/local\/etc\/default\/greet\.env changed/);
  // Back to what the last commit had: the machine holds the failed change, so it changes back and restarts.
  writeFiles(repo, { 'layers/greet/usr/local/etc/default/greet.env': 'FAIL=0\n' });
  const back = deploy('the change reverted');
  assert.match(back.stdout, /restart greet\.service/);
  assert.equal(on('systemctl is-active greet.service; cat /usr/local/etc/default/greet.env'), 'active\nFAIL=0');
});

test('an apply that fails after placing files (a failing hook) is done again, and the deploy says so', { skip }, () => {
  writeFiles(repo, {
    'machines/m/usr/local/opt/initd/Makefile': 'all:\n\t@echo "hook fails on purpose" >&2; exit 1\n',
    'layers/t/usr/local/opt/t/placed': 'placed\n',
  });
  const failed = cli(['deploy', 'm']);
  assert.equal(failed.status, 1);
  assert.match(failed.stderr, /applying failed in phase hook/);
  assert.equal(on('cat /usr/local/opt/t/placed'), 'placed', 'the files were in place');
  rmSync(join(repo, 'machines/m/usr/local/opt/initd/Makefile'));
  rmSync(join(repo, 'layers/t/usr/local/opt/t/placed'));
  const redo = deploy('after a failed hook');
  assert.match(redo.stdout, /the last apply had not committed: done again/);
  assert.equal(on('test -e /usr/local/opt/t/placed && echo there || echo gone'), 'gone', 'a path the uncommitted apply placed goes too');
});

test("a layer's check that fails on the staged tree refuses the deploy before anything changes", { skip }, () => {
  const before = on('cat /var/lib/homecloud/generations/last');
  writeFiles(repo, {
    'layers/t/usr/local/opt/initd/checks/greeting': {
      content:
        '#!/bin/sh\n# The staged tree, not the live one.\nif grep -q broken "$HOMECLOUD_STAGED/usr/local/opt/t/greeting"; then echo "greeting says broken" >&2; exit 1; fi\n',
      mode: 0o755,
    },
    'layers/t/usr/local/opt/t/greeting': 'broken\n',
  });
  const refused = cli(['deploy', 'm']);
  assert.equal(refused.status, 1, refused.stdout);
  assert.match(refused.stderr, /m: nothing was changed: \/usr\/local\/opt\/initd\/checks\/greeting: greeting says broken/);
  assert.equal(on('cat /var/lib/homecloud/generations/last; test -e /usr/local/opt/t/greeting && echo placed || echo absent'), `${before}\nabsent`);
  holds('after the refusal');
  writeFiles(repo, { 'layers/t/usr/local/opt/t/greeting': 'fine\n' });
  deploy('the check passes');
  assert.equal(on('cat /usr/local/opt/t/greeting'), 'fine');
});

test('a managed unit that is failed fails the deploy even when no file changed', { skip }, () => {
  box!.ssh('m', 'systemctl kill --signal=KILL greet.service; sleep 0.3');
  assert.equal(on('systemctl is-failed greet.service || true'), 'failed');
  const deployed = cli(['deploy', 'm']);
  assert.equal(deployed.status, 1, deployed.stdout);
  assert.match(deployed.stderr, /m: nothing to change, but a unit it manages is failed: greet\.service/);
  assert.match(cli(['plan', 'm']).stdout, /greet\.service is failed/);
  box!.ssh('m', 'systemctl restart greet.service');
  const fine = deploy('the unit restarted by hand');
  assert.match(fine.stdout, /Nothing to do/);
});

test('drift is corrected: content, mode, owner, type, removal and link target changed by hand come back, with the unit actions that follow', { skip }, () => {
  layerT({
    plain: 'plain\n',
    owned: 'owned\n',
    gone: 'gone\n',
    ln: { link: 'plain' },
    file: 'file\n',
    'data/x': 'x\n',
    'back\\slash': 'b\n',
    'new\nline': 'n\n',
  });
  deploy('files with odd names');
  // File names with a backslash or a newline are not drift.
  assert.match(cli(['plan', 'm']).stdout, /^m: nothing to do$/m);
  assert.match(cli(['diff', 'm']).stdout, /^m: no differences$/m);
  box!.ssh(
    'm',
    [
      'echo "# by hand" >> /usr/local/etc/default/greet.env',
      'chmod 600 /usr/local/opt/t/plain',
      'chown nobody:nogroup /usr/local/opt/t/owned',
      'rm /usr/local/opt/t/gone',
      'ln -sfn /etc/hostname /usr/local/opt/t/ln',
      'rm /usr/local/opt/t/file && mkdir /usr/local/opt/t/file',
      'chmod 700 /usr/local/opt/t/data',
      `echo edited >> '/usr/local/opt/t/new\nline'`,
    ].join(' && '),
  );
  const plan = cli(['plan', 'm']);
  const expected: [string, RegExp][] = [
    ['/usr/local/etc/default/greet.env', /content edited/],
    ['/usr/local/opt/t/plain', /mode 0600 instead of 0644/],
    ['/usr/local/opt/t/owned', /owner nobody:nogroup instead of root:root/],
    ['/usr/local/opt/t/gone', /removed/],
    ['/usr/local/opt/t/ln', /links to \/etc\/hostname instead of plain/],
    ['/usr/local/opt/t/file', /a directory instead of a file/],
    ['/usr/local/opt/t/data', /mode 0700 instead of 0755/],
    ['/usr/local/opt/t/new\nline', /content edited/],
  ];
  for (const [path, detail] of expected)
    assert.match(plan.stdout, new RegExp(`! ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ${detail.source}`), plan.stdout);
  const diff = cli(['diff', 'm']);
  assert.match(diff.stdout, /mode 0600 on the machine, 0644 in the build/);
  assert.match(diff.stdout, /^-# by hand$/m);
  assert.doesNotMatch(diff.stdout, /back\\\\slash/);
  const json = JSON.parse(cli(['--json', 'plan', 'm']).stdout) as { machines: { plan: { drift: { path: string }[] } }[] };
  assert.deepEqual(json.machines[0]!.plan.drift.map((d) => d.path).sort(), expected.map(([path]) => path).sort());
  const deployed = deploy('drift corrected', ['--verbose']);
  assert.match(deployed.stdout, new RegExp(`drift corrected: ${expected.length} paths`));
  assert.match(deployed.stdout, /restart greet\.service/);
  assert.match(deployed.stdout, /drift: \/usr\/local\/opt\/t\/plain: mode 0600 instead of 0644/);
  assert.match(cli(['plan', 'm']).stdout, /^m: nothing to do$/m);
});

test('a removed .pin clears the sticky bit; an empty directory is made; a unit removed while failed is reset', { skip }, () => {
  layerT({ 'state/.pin': '' }, ['empty/inner']);
  const pinned = deploy('a .pin and an empty directory');
  assert.match(pinned.stdout, /\d+ added/);
  assert.match(cli(['plan', 'm']).stdout, /^m: nothing to do$/m);
  assert.equal(on('stat -c %a /usr/local/opt/t/state; test -d /usr/local/opt/t/empty/inner && echo made'), '1755\nmade');
  layerT({ 'state/kept': 'k\n' }, ['empty/inner']);
  deploy('the .pin removed');
  assert.equal(on('stat -c %a /usr/local/opt/t/state'), '755');

  writeFiles(repo, {
    'layers/t/usr/local/lib/systemd/system/doomed.service': '[Service]\nExecStart=/bin/sleep infinity\n',
    'layers/t/usr/local/lib/systemd/system/multi-user.target.wants/doomed.service': { link: '../doomed.service' },
  });
  deploy('a unit to remove');
  box!.ssh('m', 'systemctl kill --signal=KILL doomed.service; sleep 0.3');
  assert.equal(on('systemctl is-failed doomed.service || true'), 'failed');
  layerT({ 'state/kept': 'k\n' }, ['empty/inner']);
  const removed = deploy('the failed unit removed');
  assert.match(removed.stdout, /stop doomed\.service/);
  assert.equal(on('systemctl list-units --failed --plain --no-legend | grep -c doomed || true'), '0');
});

test('the package phase waits for the dpkg lock instead of failing', { skip }, async () => {
  // Another apt run holds the lock for a few seconds (a dpkg hook sleeps while it holds it).
  box!.ssh('m', `echo 'DPkg::Pre-Invoke { "sleep 4"; };' > /etc/apt/apt.conf.d/99hold`);
  const holder = spawn(
    'ssh',
    [...box!.sandbox.sshArguments('m'), 'DEBIAN_FRONTEND=noninteractive apt-get install --reinstall -y -q less >/dev/null 2>&1; echo held'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  await new Promise((resolve) => setTimeout(resolve, 1500));
  try {
    writeFiles(repo, { 'layers/t/usr/local/opt/initd/packages/t.txt': '- less\n' });
    deploy('a package line while apt runs');
    assert.equal(on('dpkg -s less >/dev/null 2>&1 && echo installed || echo purged'), 'purged');
  } finally {
    await new Promise((resolve) => holder.once('close', resolve));
    box!.ssh('m', 'rm -f /etc/apt/apt.conf.d/99hold');
  }
});

test(
  "after /var/lib/homecloud is deleted by hand, homecloud's own files are not taken for originals: clobber still removes all it placed",
  { skip },
  async () => {
    await box!.reset('m');
    const listing = () => box!.listing('m');
    const pristine = listing();
    layerT({ own: "homecloud's\n", 'sub/file': 'x\n' });
    deploy('first');
    box!.ssh('m', 'rm -rf /var/lib/homecloud');
    deploy('after the state was deleted');
    assert.equal(on('find /var/lib/homecloud/originals -mindepth 1 | wc -l'), '0', 'nothing was taken for an original');
    const clobbered = cli(['clobber', '--yes', 'm']);
    assert.equal(clobbered.status, 0, clobbered.stderr);
    assert.equal(listing(), pristine);
  },
);

test('plan --json of 20,000 files arrives whole through a pipe read slowly', { skip }, async () => {
  const files: Record<string, string> = {};
  for (let i = 0; i < 20_000; i++) files[`layers/many/usr/local/share/many/${Math.floor(i / 500)}/f${i}`] = `${i}\n`;
  writeFiles(repo, { ...files, 'machines/m/usr/local/opt/initd/layers/10.txt': '+ greet\n+ t\n+ many\n' });
  const child = spawn(process.execPath, [cliPath, '-C', repo, '--sandbox', '--json', 'plan', 'm'], {
    env: { ...process.env, HOMECLOUD_SANDBOX: box!.paths.home },
  });
  child.stdout.pause();
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const chunks: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  child.stdout.resume();
  const status = await new Promise((resolve) => child.once('close', resolve));
  assert.equal(status, 0);
  const text = Buffer.concat(chunks).toString();
  assert.ok(text.length > 8 << 16, `far more than a pipe holds (64 KiB): ${text.length} bytes`);
  const plan = JSON.parse(text) as { machines: { plan: { added: string[] } }[] };
  assert.ok(plan.machines[0]!.plan.added.length >= 20_000);
  writeFiles(repo, { 'machines/m/usr/local/opt/initd/layers/10.txt': '+ greet\n+ t\n' });
});
