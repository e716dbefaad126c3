import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { test } from 'node:test';
import { makeRepo, runCli, writeFiles, type FixtureFile } from '../helpers/repo.ts';
import { testSandbox } from '../helpers/sandbox.ts';
import { addressOf, eventually, exposure, request } from '../helpers/web.ts';

// The lambda layer (with nginx) on a sandbox machine: functions behind nginx, scale-to-zero services.
const { box, skip } = testSandbox('lambda');
const opt = 'machines/fn/usr/local/opt/lambda';
const script = (body: string): FixtureFile => ({ content: `#!/bin/bash\nset -euo pipefail\n${body}\n`, mode: 0o755 });
const repo = makeRepo({
  'machines/fn/usr/local/opt/initd/layers/10.txt': '+ nginx\n+ lambda\n',
  'inventory.json': '{}',
  'facts/fn.json': '{"ENV_LAMBDA_IDLE_TIME": "1s"}',
  [`${opt}/bin/echo`]: script('printf \'%s %s %s\\n\' "$REQUEST_METHOD" "$PATH_INFO" "$QUERY_STRING"\ncat'),
  [`${opt}/bin/fail`]: script('echo "fail was asked to fail" >&2\nexit 3'),
  // A service that runs only while used: python's web server behind a scale-to-zero front on port 8080.
  'machines/fn/usr/local/lib/systemd/system/files.service': '[Service]\nExecStart=/usr/bin/python3 -m http.server 18080 --bind 127.0.0.1 --directory /usr/local/opt/files\nDynamicUser=yes\n',
  'machines/fn/usr/local/opt/files/index.html': 'served by files.service\n',
  [`${opt}/scale-to-zero/files.conf`]: 'LISTEN=8080\nBACKEND=127.0.0.1:18080\n',
  // The base layer's input filter lets it in.
  'machines/fn/usr/local/etc/nftables/input.d/60-files.nft': 'tcp dport 8080 accept\n',
});
const cli = (args: string[]) => runCli(['-C', repo, '--sandbox', ...args], { env: { HOMECLOUD_SANDBOX: box?.paths.home ?? '' } });
const on = (command: string) => box!.ssh('fn', command).stdout;
/** Units and processes of a function: its per-request services, and any process in their cgroups. */
const running = (name: string) => on(`systemctl list-units --all --plain --no-legend 'lambda-${name}@*'; grep -l 'lambda\\\\x2d${name}' /proc/[0-9]*/cgroup || true`);
let base = '';

test('a function answers at /<name>/ through nginx, and no process of it exists between requests', { skip }, async () => {
  await box!.up(['fn']);
  base = `http://${addressOf(box!, 'fn')}`;
  const deploy = cli(['deploy']);
  assert.equal(deploy.status, 0, deploy.stderr + deploy.stdout);
  assert.match(deploy.stdout, /start lambda\.service/);
  assert.equal(running('echo'), '');
  assert.deepEqual(await request(`${base}/echo/some/path?x=1`, { method: 'POST', body: 'the body\n' }), { status: 200, body: 'POST /some/path x=1\nthe body\n' });
  await eventually('the request\'s service and processes are gone', () => running('echo') === '');
  assert.deepEqual(await request(`${base}/echo/`), { status: 200, body: 'GET / \n' });
  await eventually('gone again', () => running('echo') === '');
  assert.equal(on('systemctl is-active lambda-echo.socket'), 'active', 'only the socket waits');

  const failed = await request(`${base}/fail/`);
  assert.equal(failed.status, 500);
  assert.match(on('journalctl --no-pager -n 20 | grep -F "fail was asked to fail"'), /fail was asked to fail/, "the function's stderr is in the journal");
});

test('a function added by a deploy answers at once; one removed is gone with its socket', { skip }, async () => {
  writeFiles(repo, { [`${opt}/bin/time`]: script('echo tick') });
  const added = cli(['deploy']);
  assert.equal(added.status, 0, added.stderr);
  assert.match(added.stdout, /reload lambda\.service/);
  assert.deepEqual(await request(`${base}/time/`), { status: 200, body: 'tick\n' });

  writeFiles(repo, { [`${opt}/bin/time`]: script('echo tock') });
  assert.equal(cli(['deploy']).status, 0);
  assert.deepEqual(await request(`${base}/time/`), { status: 200, body: 'tock\n' }, 'a changed function answers with its new code');

  rmSync(`${repo}/${opt}/bin/time`);
  const removed = cli(['deploy']);
  assert.equal(removed.status, 0, removed.stderr);
  assert.match(removed.stdout, /reload lambda\.service/);
  assert.equal((await request(`${base}/time/`)).status, 404);
  assert.equal(on('systemctl list-units --all --plain --no-legend "lambda-time*"; ls /run/lambda/*.sock /run/lambda/nginx'), '/run/lambda/echo.sock\n/run/lambda/fail.sock\n\n/run/lambda/nginx:\necho.conf\nfail.conf');
  assert.deepEqual(await request(`${base}/echo/`), { status: 200, body: 'GET / \n' }, 'the others still answer');
});

test('a scale-to-zero service starts on the first connection and stops after its idle time (a fact)', { skip }, async () => {
  assert.match(on('systemctl cat scale-to-zero-files.service'), /--exit-idle-time=1s 127\.0\.0\.1:18080/);
  const started = () => on('systemctl show -p ExecMainStartTimestampMonotonic --value files.service');
  assert.equal(on('systemctl is-active files.service scale-to-zero-files.socket || true'), 'inactive\nactive');
  assert.equal(started(), '0', 'files.service has not run yet');
  assert.deepEqual(await request(`http://${addressOf(box!, 'fn')}:8080/`), { status: 200, body: 'served by files.service\n' });
  assert.notEqual(started(), '0', 'the connection started files.service');
  await eventually('files.service is stopped once idle', () => on('systemctl is-active files.service scale-to-zero-files.service || true') === 'inactive\ninactive');
  // Busy and idle again and again, more often than systemd's default start rate limit allows a unit.
  for (let cycle = 0; cycle < 6; cycle++) {
    assert.deepEqual(await request(`http://${addressOf(box!, 'fn')}:8080/`), { status: 200, body: 'served by files.service\n' }, `start ${cycle + 2}`);
    await eventually('stopped again', () => on('systemctl is-active files.service || true') === 'inactive');
  }
});

test('the layer\'s and the generated units pass systemd-analyze verify; the long-running ones are sandboxed', { skip }, (t) => {
  const units = ['/usr/local/lib/systemd/system/lambda.service', ...['lambda-echo.socket', 'lambda-echo@.service', 'scale-to-zero-files.socket', 'scale-to-zero-files.service'].map((u) => `/run/systemd/generator/${u}`)];
  const verify = box!.ssh('fn', `systemd-analyze verify ${units.join(' ')}`);
  assert.equal(verify.status, 0, verify.stdout + verify.stderr);
  for (const unit of ['lambda-echo@0.service', 'scale-to-zero-files.service']) {
    const score = exposure(box!, 'fn', unit);
    t.diagnostic(`systemd-analyze security ${unit}: ${score}`);
    assert.ok(score < 2, `${unit}: exposure ${score}`);
  }
});
