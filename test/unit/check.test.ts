// `homecloud check`'s pieces that run on this host: shellcheck of built trees (files named as the user finds
// them), which units and nginx configurations a tree holds, JUnit XML; and `homecloud init`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Builder, machineOutput } from '../../src/build/builder.ts';
import { junitReport } from '../../src/check/junit.ts';
import type { CheckResult } from '../../src/check/results.ts';
import { shellcheckTree } from '../../src/check/shellcheck.ts';
import { nginxConfigurations, unitsIn } from '../../src/check/verify.ts';
import { build, makeRepo, repoPaths, runCli, writeFiles } from '../helpers/repo.ts';

const hasTool = (tool: string) => spawnSync(tool, ['--version']).status === 0;
const skipWithout = (tool: string) => !hasTool(tool) && process.env.CI !== 'true' && `${tool} is not installed`;

async function shellcheckOf(files: Parameters<typeof makeRepo>[0], machine = 'm') {
  const root = makeRepo(files);
  const report = await build(root);
  assert.ok(
    report.machines.every((m) => m.status !== 'failed'),
    JSON.stringify(report.machines.map((m) => m.error?.message)),
  );
  const repo = repoPaths(root);
  const { layout } = await new Builder(repo).layout(machine);
  return { root, result: await shellcheckTree(repo, machine, machineOutput(repo, machine).tree, layout) };
}

test(
  'shellcheck: a rejected script is named by its source file and line, a rendered one by its path with its template',
  { skip: skipWithout('shellcheck') },
  async () => {
    const { result } = await shellcheckOf({
      'machines/m/usr/local/opt/initd/layers/10.txt': '+ tools\n',
      'layers/tools/usr/local/bin/plain': { content: '#!/bin/bash\n\necho $1\n', mode: 0o755 },
      'layers/tools/usr/local/bin/made.m4.sh': { content: '#!/bin/sh\n# for ENV_MACHINE\necho $HOME\n', mode: 0o755 },
      'layers/tools/usr/local/bin/clean': { content: '#!/bin/bash\necho "$1"\n', mode: 0o755 },
      // Not a script: no shell #! line.
      'layers/tools/usr/local/bin/tool.py': { content: '#!/usr/bin/python3\nprint($1)\n', mode: 0o755 },
    });
    assert.equal(result.ok, false);
    // With the base layer's own scripts, which pass.
    assert.match(result.summary, /^\d+ shell scripts, 2 rejected by shellcheck$/);
    assert.deepEqual(
      result.problems.map((p) => [p.file, p.line, p.note, p.message.slice(0, 6)]).sort((a, b) => (String(a[0]) < String(b[0]) ? -1 : 1)),
      [
        ['/usr/local/bin/made.sh', 3, 'rendered from layers/tools/usr/local/bin/made.m4.sh', 'SC2086'],
        ['layers/tools/usr/local/bin/plain', 3, '/usr/local/bin/plain', 'SC2086'],
      ].sort((a, b) => (String(a[0]) < String(b[0]) ? -1 : 1)),
    );
  },
);

test(
  "shellcheck: a library sourced by its path on the machine is read from the tree; the repository's .shellcheckrc applies",
  { skip: skipWithout('shellcheck') },
  async () => {
    const files = {
      'machines/m/usr/local/opt/initd/layers/10.txt': '+ tools\n',
      'layers/tools/usr/local/lib/tools.bash': '# shellcheck shell=bash\n# shellcheck disable=SC2034 # read by its users\ngreeting=hello\n',
      'layers/tools/usr/local/bin/hi': { content: '#!/bin/bash\nsource /usr/local/lib/tools.bash\necho "$greeting" "`date`"\n', mode: 0o755 },
    };
    const { root, result } = await shellcheckOf(files);
    // Followed (no SC1091), its variable known (no SC2154); only the backticks are said.
    assert.deepEqual(
      result.problems.map((p) => p.message.slice(0, 6)),
      ['SC2006'],
    );
    writeFileSync(join(root, '.shellcheckrc'), 'disable=SC2006\n');
    const repo = repoPaths(root);
    const { layout } = await new Builder(repo).layout('m');
    const again = await shellcheckTree(repo, 'm', machineOutput(repo, 'm').tree, layout);
    assert.equal(again.ok, true, JSON.stringify(again.problems));
    assert.match(again.summary, /^\d+ shell scripts$/);
  },
);

test('the units of a tree: unit files by path, units with drop-ins only by name, a prefix drop-in not at all', () => {
  const tree = mkdtempSync(join(tmpdir(), 'homecloud-units-'));
  after(() => rmSync(tree, { recursive: true, force: true }));
  const units = join(tree, 'usr/local/lib/systemd/system');
  for (const dir of ['a.service.d', 'homecloud-.service.d', 'multi-user.target.wants']) mkdirSync(join(units, dir), { recursive: true });
  mkdirSync(join(tree, 'etc/systemd/system'), { recursive: true });
  writeFileSync(
    join(units, 'web.service'),
    '[Service]\nExecStart=/usr/sbin/nginx -c /usr/local/etc/web.conf -e stderr\nBindReadOnlyPaths=/usr/local/opt/nginx:/etc/nginx\n',
  );
  writeFileSync(join(units, 'b@.timer'), '[Timer]\nOnCalendar=daily\n');
  writeFileSync(join(units, 'a.service.d/10.conf'), '[Service]\nNice=5\n');
  writeFileSync(join(units, 'homecloud-.service.d/10.conf'), '[Service]\nNice=5\n');
  writeFileSync(join(units, 'README'), 'not a unit\n');
  writeFileSync(join(tree, 'etc/systemd/system/plain.service'), '[Service]\nExecStart=-/usr/sbin/nginx -g "daemon off;"\n');
  const found = unitsIn(tree);
  assert.deepEqual(found, [
    '/etc/systemd/system/plain.service',
    '/usr/local/lib/systemd/system/b@.timer',
    '/usr/local/lib/systemd/system/web.service',
    'a.service',
  ]);
  assert.deepEqual(nginxConfigurations(tree, found), [
    { conf: '', etc: '', from: '/etc/systemd/system/plain.service' },
    { conf: '/usr/local/etc/web.conf', etc: '/usr/local/opt/nginx', from: '/usr/local/lib/systemd/system/web.service' },
  ]);
  mkdirSync(join(tree, 'etc/nginx/sites-enabled'), { recursive: true });
  writeFileSync(join(tree, 'etc/nginx/sites-enabled/site'), 'server {}\n');
  assert.deepEqual(nginxConfigurations(tree, found).at(-1), { conf: '', etc: '', from: '/etc/nginx' });
});

test(
  'JUnit XML: a suite per check, a case per machine, failures with their problems; markup and control characters kept out',
  { skip: skipWithout('xmllint') },
  () => {
    const results: CheckResult[] = [
      { check: 'build', machine: 'a&b', ok: true, summary: '3 paths', problems: [], milliseconds: 12 },
      {
        check: 'shellcheck',
        machine: 'a&b',
        ok: false,
        summary: '1 shell script, 1 rejected by shellcheck',
        problems: [{ file: 'layers/x/usr/local/bin/<x>', line: 2, message: 'SC2086 (info): Double quote "$1" to prevent globbing\u0007' }],
        milliseconds: 40,
      },
    ];
    const dir = mkdtempSync(join(tmpdir(), 'homecloud-junit-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'junit.xml'), junitReport(results));
    const xpath = (expression: string) => spawnSync('xmllint', ['--xpath', expression, join(dir, 'junit.xml')], { encoding: 'utf8' });
    assert.equal(xpath('string(/testsuites/@tests)').stdout.trim(), '2');
    assert.equal(xpath('string(/testsuites/@failures)').stdout.trim(), '1');
    assert.equal(xpath('string(//testsuite[@name="build"]/testcase/@name)').stdout.trim(), 'a&b');
    assert.equal(
      xpath('string(//testsuite[@name="shellcheck"]/testcase/failure)').stdout.trim(),
      'layers/x/usr/local/bin/<x>:2: SC2086 (info): Double quote "$1" to prevent globbing',
    );
  },
);

test('init: a repository whose check-ready first machine is named; never over an existing file; a bad name is refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'homecloud-init-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const made = runCli(['init', join(dir, 'cloud'), '--machine', 'nas']);
  assert.equal(made.status, 0, made.stderr);
  assert.match(readFileSync(join(dir, 'cloud/inventory.json'), 'utf8'), /^ {2}"nas": \{ "host": "nas", "user": "root" \}$/m);
  assert.match(readFileSync(join(dir, 'cloud/machines/nas/usr/local/opt/initd/layers/10-standard.txt'), 'utf8'), /^\+ maintenance$/m);
  const built = runCli(['-C', join(dir, 'cloud'), 'build']);
  assert.equal(built.status, 0, built.stderr);

  writeFiles(join(dir, 'taken'), { 'README.md': 'mine\n' });
  const refused = runCli(['init', join(dir, 'taken')]);
  assert.equal(refused.status, 2);
  assert.match(refused.stderr, /taken\/README\.md already exists: nothing was written/);
  assert.equal(readFileSync(join(dir, 'taken/README.md'), 'utf8'), 'mine\n');
  assert.throws(() => readFileSync(join(dir, 'taken/inventory.json')));

  const badName = runCli(['init', join(dir, 'bad'), '--machine', 'a/b']);
  assert.equal(badName.status, 2);
  assert.match(badName.stderr, /--machine "a\/b": holds "\/"/);
});
