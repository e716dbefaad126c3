// `homecloud check`, as a user's CI runs it: on a repository `homecloud init` made, and on one with a script
// shellcheck rejects, a unit systemd-analyze verify rejects, a broken nginx configuration and a unit that fails at
// boot. Units are verified in a throwaway copy of the cloud image; --boot boots sandbox machines of its own.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { checkSandboxPaths } from '../../src/check/boot.ts';
import { Sandbox } from '../../src/sandbox/sandbox.ts';
import { makeRepo, repoPaths, runCli } from '../helpers/repo.ts';
import { testSandbox } from '../helpers/sandbox.ts';

// Only its prerequisites: check makes its own machines (under CI=true a missing one fails).
const { skip } = testSandbox('check', 'cloud');
const units = 'usr/local/lib/systemd/system';

/** JUnit XML as xmllint reads it: well formed, and the numbers asked for by XPath. */
function junit(file: string, xpath: string): string {
  const result = spawnSync('xmllint', ['--xpath', xpath, file], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout.trim();
}

/** Take down what check --boot left of its sandbox, if anything (it takes its machines down itself). */
function cleanUpCheckSandbox(repo: string) {
  after(async () => {
    const paths = checkSandboxPaths(repoPaths(repo));
    await new Sandbox(paths).down('all');
    rmSync(paths.home, { recursive: true, force: true });
  });
}

test('init makes a repository that check passes, JUnit and JSON included; init writes nothing over an existing file', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'homecloud-init-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const made = runCli(['init', dir]);
  assert.equal(made.status, 0, made.stderr);
  for (const file of ['homecloud.json', 'inventory.json', '.gitignore', 'README.md', 'machines/first/usr/local/opt/initd/layers/10-standard.txt']) {
    assert.ok(readFileSync(join(dir, file), 'utf8').length > 0, file);
  }
  assert.match(readFileSync(join(dir, '.gitignore'), 'utf8'), /^var\/$/m);
  assert.match(readFileSync(join(dir, '.gitignore'), 'utf8'), /^facts\/\*\.env$/m);
  const checked = runCli(['-C', dir, 'check', '--junit', join(dir, 'junit.xml')]);
  assert.equal(checked.status, 0, checked.stdout + checked.stderr);
  for (const kind of ['build', 'shellcheck', 'units', 'nginx']) assert.match(checked.stdout, new RegExp(`^ok\\s+${kind}\\s+first\\b`, 'm'), checked.stdout);
  assert.equal(junit(join(dir, 'junit.xml'), 'string(/testsuites/@failures)'), '0');
  assert.equal(junit(join(dir, 'junit.xml'), 'count(//testcase)'), '4');
  const json = JSON.parse(runCli(['-C', dir, '--json', 'check']).stdout) as { ok: boolean; checks: { check: string; ok: boolean }[] };
  assert.equal(json.ok, true);
  assert.ok(json.checks.some((c) => c.check === 'units' && c.ok));

  // A second init in the same place names what exists and writes nothing.
  rmSync(join(dir, 'README.md'));
  const again = runCli(['init', dir]);
  assert.equal(again.status, 2);
  assert.match(again.stderr, /homecloud\.json, .*inventory\.json.* already exist: nothing was written/);
  assert.throws(() => readFileSync(join(dir, 'README.md')), 'README.md was not written again');
});

test(
  'check fails naming the file: a script shellcheck rejects, a unit systemd-analyze verify rejects, a broken nginx configuration; JUnit says so',
  { skip },
  () => {
    const repo = makeRepo({
      'inventory.json': '{}',
      'machines/web/usr/local/opt/initd/layers/10.txt': '+ nginx\n+ tools\n',
      // SC2086: an unquoted variable.
      'layers/tools/usr/local/bin/greet': { content: '#!/bin/bash\necho hello $1\n', mode: 0o755 },
      [`layers/tools/${units}/greet.service`]: '[Unit]\nDescription=Greets\n\n[Service]\nExecStart=/usr/local/bin/greet-missing\n',
      'layers/tools/usr/local/opt/nginx/http.d/broken.conf': 'server { listen 8080; no_such_directive on; }\n',
      'machines/fine/usr/local/opt/initd/layers/10.txt': '+ nginx\n',
    });
    const junitFile = join(repo, 'junit.xml');
    const result = runCli(['-C', repo, 'check', '--junit', junitFile]);
    assert.equal(result.status, 1, result.stdout + result.stderr);
    const out = result.stdout;
    assert.match(out, /^FAIL\s+shellcheck\s+web\b/m);
    assert.match(out, /layers\/tools\/usr\/local\/bin\/greet:2 \(\/usr\/local\/bin\/greet\): SC2086/);
    assert.match(out, /^FAIL\s+units\s+web\b/m);
    assert.match(
      out,
      /layers\/tools\/usr\/local\/lib\/systemd\/system\/greet\.service \(\/usr\/local\/lib\/systemd\/system\/greet\.service\): Command \/usr\/local\/bin\/greet-missing is not executable/,
    );
    assert.match(out, /^FAIL\s+nginx\s+web\b/m);
    assert.match(out, /unknown directive "no_such_directive" in \/etc\/nginx\/http\.d\/broken\.conf:1/);
    // The other machine, with the same standard layer and none of it, passes.
    for (const kind of ['build', 'shellcheck', 'units', 'nginx']) assert.match(out, new RegExp(`^ok\\s+${kind}\\s+fine\\b`, 'm'));
    assert.equal(junit(junitFile, 'string(/testsuites/@failures)'), '3');
    assert.equal(junit(junitFile, 'string(//testsuite[@name="shellcheck"]/testcase[@name="web"]/failure/@type)'), 'shellcheck');
    assert.match(junit(junitFile, 'string(//testsuite[@name="nginx"]/testcase[@name="web"]/failure)'), /broken\.conf/);
  },
);

test('check --boot deploys each machine to a sandbox machine and reboots it: a unit that fails at boot fails the check', { skip }, () => {
  const repo = makeRepo({
    'inventory.json': '{}',
    'machines/boots/usr/local/opt/initd/layers/10.txt': '+ tools\n',
    // Fine when deployed (sshd runs by then); at boot it runs before sshd, as it asks, and fails.
    [`layers/tools/${units}/needs-sshd.service`]:
      '[Unit]\nDescription=Needs sshd, but starts before it\nBefore=ssh.service\n\n[Service]\nType=oneshot\nExecStart=/bin/systemctl is-active -q ssh.service\n\n[Install]\nWantedBy=multi-user.target\n',
    [`layers/tools/${units}/multi-user.target.wants/needs-sshd.service`]: { link: '../needs-sshd.service' },
  });
  cleanUpCheckSandbox(repo);
  const junitFile = join(repo, 'junit.xml');
  const result = runCli(['-C', repo, 'check', '--boot', '--junit', junitFile]);
  assert.equal(result.status, 1, result.stdout + result.stderr);
  assert.match(result.stdout, /^ok\s+units\s+boots\b/m, 'systemd-analyze verify has nothing against it');
  assert.match(result.stdout, /^FAIL\s+boot\s+boots\b/m, result.stdout);
  assert.match(result.stdout, /needs-sshd\.service failed at boot/);
  assert.equal(junit(junitFile, 'string(//testsuite[@name="boot"]/@failures)'), '1');
  // Its machines are gone.
  assert.deepEqual(new Sandbox(checkSandboxPaths(repoPaths(repo))).list(), []);
});
