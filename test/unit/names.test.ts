// Names (FORMAT.md sections 2 and 8): a machine or layer name is any single
// path component. "-" is a common one: the original's repositories use it
// for a machine that selects every layer, and for an empty layer.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { splitArguments } from '../../src/cli/commands/exec.ts';
import { entryProblem, withDefaults } from '../../src/load/inventory.ts';
import { inventoryEntry, loadModel, reachProblem } from '../../src/load/model.ts';
import { nameArgument, nameProblem } from '../../src/load/names.ts';
import { destination } from '../../src/transport/ssh.ts';
import { build, buildError, buildOne, makeRepo, manifestOf, preludeOnlyBase, readTree, repoPaths, runCli, treeFile } from '../helpers/repo.ts';

const dashList = 'machines/-/usr/local/opt/initd/layers/10.txt';

/** Machine "-" selecting layer "-", which has one file; machine "ok" beside it. */
function dashRepo(extra: Record<string, string> = {}) {
  return makeRepo({
    ...preludeOnlyBase,
    [dashList]: '# the placeholder layer\n+ -\n',
    'layers/-/usr/local/etc/dash.conf': 'from the layer named -\n',
    'machines/-/etc/own.conf': 'own\n',
    'machines/ok/etc/ok.conf': 'ok\n',
    ...extra,
  });
}

test('the rule: a single path component, "-" included; not "." or "..", no "/", NUL or newline', () => {
  for (const name of ['-', '-x', '--', '_', 'a b', 'nas+backup', 'ü', '...', '.hidden']) assert.equal(nameProblem(name), undefined, name);
  assert.equal(nameProblem('.'), 'is "."');
  assert.equal(nameProblem('..'), 'is ".."');
  assert.equal(nameProblem('a/b'), 'holds "/"');
  assert.equal(nameProblem('a\0b'), 'holds a NUL character');
  assert.equal(nameProblem('a\nb'), 'holds a newline');
  assert.equal(nameProblem(''), 'is empty');
});

test('a machine and a layer named "-" build: the tree has the layer\'s file and the machine\'s own', async () => {
  const root = dashRepo();
  const report = await build(root);
  const byName = Object.fromEntries(report.machines.map((m) => [m.machine, m]));
  assert.equal(byName['-']?.status, 'built', byName['-']?.error?.toString());
  assert.equal(byName.ok?.status, 'built');
  assert.equal(readTree(root, '-', '/usr/local/etc/dash.conf'), 'from the layer named -\n');
  assert.equal(readTree(root, '-', '/etc/own.conf'), 'own\n');
  assert.ok(manifestOf(root, '-').entries['/usr/local/etc/dash.conf'], 'the manifest lists the layer file');
  // The layer is the machine's only: "ok" does not get it.
  assert.equal(existsSync(treeFile(root, 'ok', '/usr/local/etc/dash.conf')), false);
});

test('an empty placeholder layer "-" is selected and adds nothing', async () => {
  const root = makeRepo({ ...preludeOnlyBase, 'machines/m/usr/local/opt/initd/layers/10.txt': '+ -\n', 'machines/m/etc/m.conf': 'm\n' });
  mkdirSync(join(root, 'layers/-'));
  const result = await buildOne(root, 'm');
  assert.equal(result.status, 'built', result.error?.toString());
  assert.equal(readTree(root, 'm', '/etc/m.conf'), 'm\n');
  // Without its directory, "-" is an unknown layer like any other.
  const missing = makeRepo({ ...preludeOnlyBase, 'machines/m/usr/local/opt/initd/layers/10.txt': '# x\n+ -\n' });
  const error = await buildError(missing);
  assert.match(error.message, /^unknown layer "-"/);
  assert.deepEqual(error.where, { file: 'machines/m/usr/local/opt/initd/layers/10.txt', line: 2 });
});

test('homecloud build - builds only the machine named "-"; explain - <path> says where its file comes from', () => {
  const root = dashRepo();
  const run = runCli(['-C', root, 'build', '-']);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /^-\s+built: \d+ written/m);
  assert.doesNotMatch(run.stdout, /^ok\s/m);
  assert.equal(readTree(root, '-', '/usr/local/etc/dash.conf'), 'from the layer named -\n');
  assert.equal(existsSync(treeFile(root, 'ok', '/etc/ok.conf')), false, 'ok was not named');

  const explain = runCli(['-C', root, 'explain', '-', '/usr/local/etc/dash.conf']);
  assert.equal(explain.status, 0, explain.stderr);
  assert.match(explain.stdout, /^\/usr\/local\/etc\/dash\.conf on -: file/m);
  assert.match(explain.stdout, /source\s+layers\/-\/usr\/local\/etc\/dash\.conf \(layer -\)/);
  // After --, as the help says for names that start with "-".
  const after = runCli(['-C', root, 'explain', '--', '-', '/etc/own.conf']);
  assert.equal(after.status, 0, after.stderr);
  assert.match(after.stdout, /source\s+machines\/-\/etc\/own\.conf/);
});

test('a machine directory whose name holds a newline fails only itself; the other machine builds', async () => {
  const root = dashRepo({ 'machines/bad\nname/etc/b.conf': 'b\n' });
  const report = await build(root);
  const bad = report.machines.find((m) => m.machine === 'bad\nname');
  assert.equal(bad?.status, 'failed');
  assert.equal(bad.error?.message, 'the directory "bad\\nname" is not a machine name: it holds a newline');
  assert.deepEqual(bad.error?.where, { file: 'machines' });
  assert.match(bad.error?.hint ?? '', /rename the directory/);
  assert.equal(existsSync(join(root, 'var/build/bad\nname')), false, 'nothing is built for it');

  const cli = dashRepo({ 'machines/bad\nname/etc/b.conf': 'b\n' });
  const run = runCli(['-C', cli, 'build']);
  assert.equal(run.status, 1, run.stderr);
  assert.match(run.stdout, /^"bad\\nname"\s+failed$/m, 'the name is shown quoted, on one line');
  assert.match(run.stdout, /^ok\s+built/m);
  assert.match(run.stdout, /^-\s+built/m);
  assert.match(
    run.stderr,
    /^error: "bad\\nname": machines: the directory "bad\\nname" is not a machine name: it holds a newline\n {2}a machine name is a single path component: not "\." or "\.\.", without "\/", NUL or newline: rename the directory$/m,
  );
  assert.equal(readTree(cli, 'ok', '/etc/ok.conf'), 'ok\n');
  assert.equal(readTree(cli, '-', '/usr/local/etc/dash.conf'), 'from the layer named -\n');
});

test('"." and ".." (and a name with "/") in a layer list are refused at the file and line', async () => {
  for (const [name, problem] of [
    ['.', 'it is "."'],
    ['..', 'it is ".."'],
    ['../x', 'it holds "/"'],
  ]) {
    const root = makeRepo({
      ...preludeOnlyBase,
      'machines/m/usr/local/opt/initd/layers/10.txt': `# lists\n+ -\n+ ${name}\n`,
      'layers/-/x': '',
      'layers/x/y': '',
    });
    const error = await buildError(root);
    assert.equal(error.message, `"${name}" is not a layer name: ${problem}`);
    assert.deepEqual(error.where, { file: 'machines/m/usr/local/opt/initd/layers/10.txt', line: 3 });
    assert.match(error.hint ?? '', /a layer name is a directory name under layers\//);
  }
});

test('inventory.json takes "-" and "-x" as keys; one with a host is reached at that host', async () => {
  const root = dashRepo({ 'inventory.json': '{"-": {"host": "192.0.2.1"}, "-x": {"user": "admin"}}\n' });
  const model = await loadModel(repoPaths(root));
  assert.deepEqual(model.machines, ['-', '-x', 'ok']);
  assert.deepEqual(inventoryEntry(model, '-'), { host: '192.0.2.1', user: 'root', options: [] });
  assert.equal(reachProblem(model, '-'), undefined);
  assert.equal(destination({ machine: '-', entry: inventoryEntry(model, '-') }), 'root@192.0.2.1');
  // "-x" has an entry but no host: its name would be the host.
  assert.equal(reachProblem(model, '-x')?.message, 'machine -x has no host: add it to inventory.json');
  assert.equal(reachProblem(model, 'ok'), undefined);
  const report = await build(root);
  assert.deepEqual(
    report.machines.map((m) => [m.machine, m.status]),
    [
      ['-', 'built'],
      ['-x', 'built'],
      ['ok', 'built'],
    ],
  );
});

test('a host that defaults to a name ssh or rsync would misread is a clear error, never user@-x', () => {
  for (const machine of ['-', '-x', 'a b', 'a:b', 'nas+backup']) {
    const entry = withDefaults(machine);
    const problem = entryProblem(machine, entry);
    assert.equal(problem?.message, `machine ${machine} has no host: add it to inventory.json`, machine);
    assert.match(problem.hint ?? '', new RegExp(machine.startsWith('-') ? 'which ssh would read as an option' : 'a host name is letters'));
    assert.throws(() => destination({ machine, entry }), /has no host/, machine);
  }
  assert.equal(entryProblem('nas', withDefaults('nas')), undefined);
  assert.equal(entryProblem('-x', withDefaults('-x', { host: 'nas.lan' })), undefined);
  assert.equal(destination({ machine: '-x', entry: withDefaults('-x', { host: 'nas.lan' }) }), 'root@nas.lan');
});

test('a machine named "-x" builds, and deploy -- -x without an inventory host fails it with the clear error, running no ssh', () => {
  const root = makeRepo({ ...preludeOnlyBase, 'machines/-x/etc/x.conf': 'x\n', 'machines/ok/etc/ok.conf': 'ok\n' });
  // ssh and rsync that only note how they were called: any call for -x would show here.
  const bin = join(root, 'fake-bin');
  mkdirSync(bin);
  const log = join(bin, 'calls');
  for (const program of ['ssh', 'rsync']) {
    writeFileSync(
      join(bin, program),
      `#!/bin/sh\necho '${program}' >> '${log}'\nfor arg in "$@"; do printf '  %s\\n' "$arg" >> '${log}'; done\necho 'ssh: Could not resolve hostname: fake' >&2\nexit 255\n`,
    );
    chmodSync(join(bin, program), 0o755);
  }
  const env = { PATH: `${bin}:${process.env.PATH}` };

  const built = runCli(['-C', root, 'build', '--', '-x']);
  assert.equal(built.status, 0, built.stderr);
  assert.equal(readTree(root, '-x', '/etc/x.conf'), 'x\n');

  const run = runCli(['-C', root, 'deploy', 'ok', '--', '-x'], { env });
  assert.equal(run.status, 1);
  assert.match(
    run.stderr,
    /^error: -x: machine -x has no host: add it to inventory\.json\n {2}its name cannot be its host \(it starts with "-", which ssh would read as an option\): write its address, e\.g\. \{"-x": \{"host": "192\.168\.1\.20"\}\}$/m,
  );
  // ok went as far as ssh (the fake works), -x never did.
  const calls = existsSync(log) ? readFileSync(log, 'utf8') : '';
  assert.match(calls, /^ssh\n(?: {2}.*\n)*? {2}--\n {2}root@ok\n/);
  assert.doesNotMatch(calls, /^ {2}(\S*@)?-x$/m);
  // The build of -x is untouched by the failed deploy.
  assert.equal(readTree(root, '-x', '/etc/x.conf'), 'x\n');
});

test('--sandbox: a machine whose name the sandbox cannot take fails alone, saying so', async () => {
  const root = dashRepo();
  const repo = repoPaths(root);
  const sandboxInventory = join(root, 'sandbox-inventory.json');
  writeFileSync(sandboxInventory, JSON.stringify({ ok: { host: '10.231.1.12', user: 'root', options: [] } }));
  repo.sandboxInventory = sandboxInventory;
  const model = await loadModel(repo);
  assert.equal(reachProblem(model, 'ok'), undefined);
  const problem = reachProblem(model, '-');
  assert.match(problem?.message ?? '', /^- cannot run in the sandbox: a sandbox machine's name is its host name: letters, digits/);
  assert.match(problem?.hint ?? '', /still builds, and deploys without --sandbox/);
});

test('exec: machines, then -- and the command; names that start with "-" after a -- of their own', () => {
  const argv = (...args: string[]) => ['node', 'homecloud', '-C', 'repo', 'exec', ...args];
  // What commander hands over: the operands, without the first --.
  assert.deepEqual(splitArguments(['nas', 'media', 'ls', '--', '-l'], argv('nas', 'media', '--', 'ls', '--', '-l')), {
    names: ['nas', 'media'],
    command: ['ls', '--', '-l'],
  });
  assert.deepEqual(splitArguments(['-', 'uptime'], argv('-', '--', 'uptime')), { names: ['-'], command: ['uptime'] });
  assert.deepEqual(splitArguments(['-x', '-', '--', 'uptime'], argv('--', '-x', '-', '--', 'uptime')), { names: ['-x', '-'], command: ['uptime'] });
  assert.deepEqual(splitArguments(['-x', 'uptime'], argv('--', '-x', 'uptime')), { names: [], command: ['-x', 'uptime'] });
  assert.deepEqual(splitArguments(['nas'], argv('nas')), { names: ['nas'], command: [] });
});

test('--help of the commands that take machines says how to name "-" and "-x"', () => {
  for (const [command, example] of [
    ['build', 'homecloud build -- -x'],
    ['deploy', 'homecloud deploy -- -x'],
    ['explain', 'homecloud explain -- -x /usr/local/etc/x.conf'],
    ['exec', 'homecloud exec -- -x -- uptime'],
    ['clobber', 'homecloud clobber --yes -- -x'],
    ['plan', 'homecloud plan -- -x'],
  ]) {
    const run = runCli([command!, '--help']);
    assert.equal(run.status, 0, command);
    assert.ok(run.stdout.includes(`(${example})`), `${command}: ${run.stdout}`);
    assert.match(run.stdout, /A machine named "-" is named as it is/, command);
  }
  assert.equal(nameArgument('-x'), '-- -x');
  assert.equal(nameArgument('-'), '-- -');
  assert.equal(nameArgument('a b'), "'a b'");
});
