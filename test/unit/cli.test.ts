// The bundled CLI: build, ls, explain, exit statuses and help.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { plainBuild } from '../../src/cli/build-shortcut.ts';
import { cliPath, layerList, makeRepo, projectRoot, readTree, runCli } from '../helpers/repo.ts';

const secret = 'hunter2-very-secret';

function webRepo() {
  return makeRepo({
    ...layerList('web'),
    'layers/web/usr/local/etc/web.m4.conf': '# port ENV_PORT\nuser m5_assert([ENV_USER])\npass ENV_PASSWORD\nname ENV_MACHINE\nm5_or([ENV_UNSET], [d])\n',
    'layers/web/usr/local/doc/examples/web.env': 'ENV_PORT=80\nENV_USER=www\n',
    'layers/web/usr/local/etc/plain.conf': 'layer\n',
    'machines/m/usr/local/etc/plain.conf': 'machine\n',
    'machines/m/usr/local/opt/initd/links/10.txt': '# masks\n/usr/local/lib/systemd/system/foo.service /dev/null\n',
    'facts/m.json': '{\n  "ENV_PORT": 8080\n}\n',
    'facts/m.env': `# secrets\nENV_PASSWORD=${secret}\n`,
    'machines/n/etc/n.conf': 'n\n',
  });
}

test('build: exit 0 and a summary; the tree is made', () => {
  const root = webRepo();
  const run = runCli(['-C', root, 'build']);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /^m\s+built: \d+ written, 0 removed/m);
  assert.match(run.stdout, /Built 2 of 2 machines/);
  assert.equal(run.stderr, '');
  assert.equal(readTree(root, 'm', '/usr/local/etc/web.conf'), `# port 8080\nuser www\npass ${secret}\nname m\nd\n`);
  const again = runCli(['-C', root, 'build']);
  assert.equal(again.status, 0);
  assert.match(again.stdout, /All 2 machines are up to date/);
});

test('build runs in the repository containing the current directory, and builds only the named machines', () => {
  const root = webRepo();
  const run = runCli(['build', 'n'], { cwd: `${root}/machines/m/usr` });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /^n\s+built/m);
  assert.doesNotMatch(run.stdout, /^m\s/m);
});

test('build: exit 1 when a machine fails, the message on stderr naming file and line; the others are built', () => {
  const root = makeRepo({
    'machines/bad/etc/t.m4.conf': 'ok\nm5_assert([ENV_NOPE])\n',
    'machines/good/etc/g.conf': 'g\n',
  });
  const run = runCli(['-C', root, 'build']);
  assert.equal(run.status, 1);
  assert.match(run.stdout, /^bad\s+failed/m);
  assert.match(run.stdout, /^good\s+built/m);
  assert.match(run.stdout, /1 of 2 machines failed/);
  assert.match(run.stderr, /^error: bad: machines\/bad\/etc\/t\.m4\.conf:2: required fact ENV_NOPE is not set/m);
  assert.equal(readTree(root, 'good', '/etc/g.conf'), 'g\n');
});

test('build --json: one JSON document with each machine, and the error located', () => {
  const root = makeRepo({ 'machines/bad/etc/t.m4.conf': 'ok\nm5_assert([ENV_NOPE])\n', 'machines/good/etc/g.conf': 'g\n' });
  const run = runCli(['-C', root, 'build', '--json']);
  assert.equal(run.status, 1);
  const report = JSON.parse(run.stdout) as {
    machines: { machine: string; status: string; written: number; paths?: number; error?: { message: string; file: string; line: number } }[];
  };
  const byName = Object.fromEntries(report.machines.map((m) => [m.machine, m]));
  assert.equal(byName.good!.status, 'built');
  assert.equal(typeof byName.good!.paths, 'number');
  assert.ok(byName.good!.written > 0);
  assert.equal(byName.bad!.status, 'failed');
  assert.equal(byName.bad!.error!.file, 'machines/bad/etc/t.m4.conf');
  assert.equal(byName.bad!.error!.line, 2);
  assert.match(byName.bad!.error!.message, /ENV_NOPE/);
});

test('ls: machines, addresses, layers, file counts and build state', () => {
  const root = webRepo();
  const before = runCli(['-C', root, 'ls']);
  assert.equal(before.status, 0, before.stderr);
  assert.match(before.stdout, /^MACHINE\s+ADDRESS\s+LAYERS\s+FILES\s+BUILD$/m);
  assert.match(before.stdout, /^m\s+root@m\s+_ web\s+\d+\s+not built$/m);
  assert.match(before.stdout, /^n\s+root@n\s+_\s+\d+\s+not built$/m);
  runCli(['-C', root, 'build']);
  const after = runCli(['-C', root, '--json', 'ls']);
  const rows = (JSON.parse(after.stdout) as { machines: { machine: string; layers: string[]; state: string }[] }).machines;
  assert.deepEqual(
    rows.map((r) => [r.machine, r.layers, r.state]),
    [
      ['m', ['_', 'web'], 'up to date'],
      ['n', ['_'], 'up to date'],
    ],
  );
});

test('ls: a broken machine is shown with its error, exit 1', () => {
  const root = makeRepo({ ...layerList('missing'), 'machines/n/etc/x': '' });
  const run = runCli(['-C', root, 'ls']);
  assert.equal(run.status, 1);
  assert.match(run.stdout, /^m\s.*broken$/m);
  assert.match(run.stderr, /machines\/m\/usr\/local\/opt\/initd\/layers\/10\.txt:1: unknown layer "missing"/);
});

test('explain a template: source, rule, and each fact read with where it came from; a secret is never printed', () => {
  const root = webRepo();
  const run = runCli(['-C', root, 'explain', 'm', '/usr/local/etc/web.conf']);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /source\s+layers\/web\/usr\/local\/etc\/web\.m4\.conf \(layer web\)/);
  assert.match(run.stdout, /rule\s+rendered with GNU m4/);
  assert.match(run.stdout, /ENV_PORT\s+8080\s+facts\/m\.json:2/);
  assert.match(run.stdout, /ENV_USER\s+www\s+layers\/web\/usr\/local\/doc\/examples\/web\.env:2/);
  assert.match(run.stdout, /ENV_MACHINE\s+m\s+the machine name/);
  assert.match(run.stdout, /ENV_PASSWORD\s+\(secret\)\s+facts\/m\.env:2/);
  assert.match(run.stdout, /ENV_UNSET\s+\(not set\)/);
  assert.doesNotMatch(run.stdout + run.stderr, new RegExp(secret));

  const json = runCli(['-C', root, '--json', 'explain', 'm', 'usr/local/etc/web.conf/']);
  assert.equal(json.status, 0, json.stderr);
  assert.doesNotMatch(json.stdout, new RegExp(secret));
  const result = JSON.parse(json.stdout) as {
    path: string;
    rule: string;
    facts: { key: string; value: string | null; secret: boolean; from: string | null }[];
  };
  assert.equal(result.path, '/usr/local/etc/web.conf');
  assert.equal(result.rule, 'template');
  const facts = Object.fromEntries(result.facts.map((f) => [f.key, f]));
  assert.deepEqual(facts.ENV_PASSWORD, { key: 'ENV_PASSWORD', value: null, set: true, secret: true, from: 'facts/m.env:2' });
  assert.deepEqual(facts.ENV_PORT, { key: 'ENV_PORT', value: '8080', set: true, secret: false, from: 'facts/m.json:2' });
});

test('a failing render does not print a secret fact in its error message', () => {
  const root = makeRepo({ 'machines/m/etc/t.m4.conf': 'ok\nm4_eval(ENV_PASSWORD)\n', 'facts/m.env': `ENV_PASSWORD=${secret}\n` });
  for (const args of [['build'], ['build', '--json']]) {
    const run = runCli(['-C', root, ...args]);
    assert.equal(run.status, 1);
    assert.match(run.stdout + run.stderr, /machines\/m\/etc\/t\.m4\.conf/);
    assert.doesNotMatch(run.stdout + run.stderr, new RegExp(secret), args.join(' '));
  }
});

test("explain a machine override: the machine's file and the layer file it overrides", () => {
  const root = webRepo();
  const run = runCli(['-C', root, 'explain', 'm', '/usr/local/etc/plain.conf']);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /source\s+machines\/m\/usr\/local\/etc\/plain\.conf \(the machine's own directory\)/);
  assert.match(run.stdout, /overrides\s+layers\/web\/usr\/local\/etc\/plain\.conf \(layer web\)/);
  assert.match(run.stdout, /rule\s+copied with its permission bits/);
});

test('explain a declared link: its list file and line', () => {
  const root = webRepo();
  const run = runCli(['-C', root, 'explain', 'm', '/usr/local/lib/systemd/system/foo.service']);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /link to \/dev\/null/);
  assert.match(run.stdout, /declared\s+machines\/m\/usr\/local\/opt\/initd\/links\/10\.txt:2/);
});

test('explain a path the machine does not have: exit 2 with a message', () => {
  const root = webRepo();
  const run = runCli(['-C', root, 'explain', 'm', '/usr/local/etc/nope.conf']);
  assert.equal(run.status, 2);
  assert.match(run.stderr, /^error: m has no path \/usr\/local\/etc\/nope\.conf/);
});

test('an unknown machine is exit 2 with a clean message, for build and explain', () => {
  const root = webRepo();
  for (const args of [
    ['build', 'nosuch'],
    ['explain', 'nosuch', '/etc'],
  ]) {
    const run = runCli(['-C', root, ...args]);
    assert.equal(run.status, 2, args.join(' '));
    assert.match(run.stderr, /^error: unknown machine "nosuch"\n\s+known machines: m, n\n$/, args.join(' '));
  }
});

test('outside a repository: exit 2 saying so', () => {
  const run = runCli(['build'], { cwd: '/' });
  assert.equal(run.status, 2);
  assert.match(run.stderr, /^error: no homecloud repository at \//);
});

test('--help works on every command', () => {
  const top = runCli(['--help']);
  assert.equal(top.status, 0);
  assert.match(top.stdout, /Usage: homecloud/);
  for (const command of ['build', 'ls', 'explain']) assert.match(top.stdout, new RegExp(`^  ${command}\\b`, 'm'));
  for (const [command, usage] of [
    ['build', /Usage: homecloud build \[options\] \[machine\.\.\.\]/],
    ['ls', /Usage: homecloud ls \[options\]/],
    ['explain', /Usage: homecloud explain \[options\] <machine> <path>/],
  ] as const) {
    const run = runCli([command, '--help']);
    assert.equal(run.status, 0, command);
    assert.match(run.stdout, usage);
    assert.match(run.stdout, /--repo <dir>/);
    const viaHelp = runCli(['help', command]);
    assert.equal(viaHelp.stdout, run.stdout);
  }
});

test('bad usage is exit 2 (1 means a machine failed)', () => {
  for (const args of [['explain', 'm'], ['nosuchcommand'], ['build', '--bogus']]) {
    const run = runCli(args);
    assert.equal(run.status, 2, args.join(' '));
    assert.match(run.stderr, /^error: /, args.join(' '));
  }
});

test('all output reaches a pipe that is read slowly: more than 1 MiB, the same bytes as into a file', () => {
  // 5000 machines with long names, known from the inventory alone: ls --json has a row for each.
  const inventory = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`machine-${String(i).padStart(5, '0')}-${'x'.repeat(80)}`, {}]));
  const root = makeRepo({ 'inventory.json': JSON.stringify(inventory) });
  const args = [cliPath, '-C', root, '--json', 'ls'];
  const file = join(root, 'ls.json');
  const fd = openSync(file, 'w');
  const toFile = spawnSync(process.execPath, args, { stdio: ['ignore', fd, 'pipe'], encoding: 'utf8' });
  closeSync(fd);
  assert.equal(toFile.status, 0, toFile.stderr);
  const size = statSync(file).size;
  assert.ok(size > 1024 * 1024, `${size} bytes`);
  // The reader starts a second late: by then the pipe has long been full, and homecloud has had every chance to exit.
  const piped = spawnSync('sh', ['-c', '("$@"; echo "exit $?" >&2) | (sleep 1; wc -c)', 'sh', process.execPath, ...args], { encoding: 'utf8' });
  assert.equal(piped.stderr, 'exit 0\n');
  assert.equal(Number(piped.stdout.trim()), size);
});

test('--version prints the version of the package, and exits 0', () => {
  const result = runCli(['--version']);
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /^\d+\.\d+\.\d+\n$/);
});

test('a plain build skips commander: every command line gives what commander gives (status, output), and anything else goes to commander', () => {
  const root = makeRepo({ 'machines/a/etc/a': 'a\n', 'machines/b/etc/b': 'b\n', 'machines/-/etc/dash': '-\n', 'machines/-x/etc/x': 'x\n' });
  const commander = join(projectRoot, 'dist', 'main.cjs');
  const corpus = [
    ['build'],
    ['build', 'a'],
    ['build', '-', 'b'],
    ['build', '--', '-x'],
    ['build', '--', '-x', '--json'],
    ['--', 'build', 'a'],
    ['build', '--json', 'a'],
    ['--json', 'build', '--rerender'],
    ['build', '-v', '--rerender', 'a'],
    ['-vj', '3', 'build', 'b'],
    ['build', '--jobs=2', '--sandbox'],
    ['--rerender', 'build'],
    ['build', '--rerender=yes'],
    ['build', '--bogus'],
    ['build', '-x'],
    ['build', 'nosuch'],
    ['build', '--help'],
    ['help', 'build'],
    ['bu1ld'],
    ['build', '-C'],
  ];
  assert.equal(runCli(['-C', root, 'build']).status, 0);
  // Build times differ from run to run.
  const same = (text: string) => text.replace(/\d+(\.\d+)? ?ms\b|"milliseconds":[\d.]+/g, '');
  for (const args of corpus) {
    const run = (entry: string) => spawnSync(process.execPath, [entry, '-C', root, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
    const viaCommander = run(commander);
    const viaEntry = run(cliPath);
    assert.deepEqual(
      [viaEntry.status, same(viaEntry.stdout), same(viaEntry.stderr)],
      [viaCommander.status, same(viaCommander.stdout), same(viaCommander.stderr)],
      args.join(' '),
    );
  }
  // What the shortcut takes, and what it leaves to commander.
  assert.deepEqual(plainBuild(['-C', 'r', 'build', '--', '-x']), {
    machines: ['-x'],
    options: { repo: 'r', json: false, verbose: false, sandbox: undefined, jobs: undefined, rerender: undefined },
  });
  for (const args of [['build', '--help'], ['--rerender', 'build'], ['plan'], ['--', '--json', 'build'], ['build', '-C'], []])
    assert.equal(plainBuild(args), undefined, args.join(' '));
});
