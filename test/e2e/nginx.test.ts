import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { assertMachineIsItsGeneration } from '../helpers/invariant.ts';
import { makeRepo, runCli, writeFiles } from '../helpers/repo.ts';
import { testSandbox } from '../helpers/sandbox.ts';
import { addressOf, exposure, request } from '../helpers/web.ts';

// The nginx layer on a sandbox machine: configuration from /usr/local/opt/nginx, drop-ins, tested reloads.
const { box, skip } = testSandbox('nginx');
const server = 'machines/web/usr/local/opt/nginx/server.d';
const repo = makeRepo({
  'machines/web/usr/local/opt/initd/layers/10.txt': '+ nginx\n',
  'inventory.json': '{}',
  [`${server}/50-version.conf`]: 'location = /version { return 200 "v1\\n"; }\n',
  // A stream.d drop-in: TCP port 8081 to the web server, through the stream module.
  'machines/web/usr/local/opt/nginx/stream.d/50-forward.conf': 'server { listen 8081; proxy_pass 127.0.0.1:80; }\n',
  // The base layer's input filter lets it in.
  'machines/web/usr/local/etc/nftables/input.d/60-forward.nft': 'tcp dport 8081 accept\n',
});
const cli = (args: string[]) => runCli(['-C', repo, '--sandbox', ...args], { env: { HOMECLOUD_SANDBOX: box?.paths.home ?? '' } });
const on = (command: string) => box!.ssh('web', command).stdout;
const mainPid = () => on('systemctl show -p MainPID --value nginx-local.service');
let base = '';

test("on a machine where Debian's nginx runs, the layer takes over: its configuration and the machine's drop-ins are served", { skip }, async () => {
  await box!.up(['web']);
  base = `http://${addressOf(box!, 'web')}`;
  // As on a Debian machine with nginx installed: the package's nginx.service serves its default site.
  box!.ssh('web', 'rm /etc/systemd/system/nginx.service && systemctl daemon-reload && systemctl start nginx.service');
  assert.match((await request(`${base}/`)).body, /Welcome to nginx/);
  const deploy = cli(['deploy']);
  assert.equal(deploy.status, 0, deploy.stderr + deploy.stdout);
  assertMachineIsItsGeneration(box!, 'web', 'first deploy');
  assert.match(deploy.stdout, /start nginx-local\.service/);
  assert.equal(on('systemctl is-active nginx.service nginx-local.service || true'), 'inactive\nactive', "Debian's nginx.service gave way");
  assert.equal(on('systemctl is-enabled nginx.service || true'), 'masked');
  assert.deepEqual(await request(`${base}/version`), { status: 200, body: 'v1\n' });
  assert.deepEqual(await request(`http://${addressOf(box!, 'web')}:8081/version`), { status: 200, body: 'v1\n' }, 'stream.d is included');
  // Port 80 for the base layer's input chain, which includes these files: valid nft there (checked, not loaded).
  const input = box!.ssh(
    'web',
    'printf \'table inet check {\\n chain input {\\n include "/usr/local/etc/nftables/input.d/50-nginx.nft"\\n }\\n}\\n\' | nft -c -f -',
  );
  assert.equal(input.status, 0, input.stderr);
  assert.equal(on('cat /usr/local/etc/nftables/input.d/50-nginx.nft'), 'tcp dport 80 accept');
});

test('a configuration change reloads nginx: the new configuration is served by the same main process', { skip }, async () => {
  const pid = mainPid();
  writeFiles(repo, { [`${server}/50-version.conf`]: 'location = /version { return 200 "v2\\n"; }\n' });
  const changed = cli(['deploy']);
  assert.equal(changed.status, 0, changed.stderr);
  assertMachineIsItsGeneration(box!, 'web', 'a drop-in changed');
  assert.match(changed.stdout, /reload-or-restart nginx-local\.service/);
  assert.deepEqual(await request(`${base}/version`), { status: 200, body: 'v2\n' });
  assert.equal(mainPid(), pid);

  // A file another layer adds to a drop-in directory reloads nginx too.
  writeFiles(repo, { [`${server}/60-added.conf`]: 'location = /added { return 200 "added\\n"; }\n' });
  const added = cli(['deploy']);
  assert.equal(added.status, 0, added.stderr);
  assertMachineIsItsGeneration(box!, 'web', 'a drop-in added');
  assert.deepEqual(await request(`${base}/added`), { status: 200, body: 'added\n' });
  assert.equal(mainPid(), pid);
});

test("a broken configuration fails the deploy with nginx's message, and the running configuration keeps serving", { skip }, async () => {
  const pid = mainPid();
  writeFiles(repo, { [`${server}/50-version.conf`]: 'location = /version { retrun 200 "v3\\n"; }\n' });
  const broken = cli(['deploy']);
  assert.equal(broken.status, 1, broken.stdout + broken.stderr);
  assert.deepEqual(await request(`${base}/version`), { status: 200, body: 'v2\n' });
  assert.equal(mainPid(), pid);
  assert.equal(on('systemctl is-active nginx-local.service'), 'active');

  writeFiles(repo, { [`${server}/50-version.conf`]: 'location = /version { return 200 "v3\\n"; }\n' });
  const repaired = cli(['deploy']);
  assert.equal(repaired.status, 0, repaired.stderr);
  assertMachineIsItsGeneration(box!, 'web', 'the broken drop-in repaired');
  assert.deepEqual(await request(`${base}/version`), { status: 200, body: 'v3\n' });
  // Last, so that the machine is repaired whatever the message: the unit's journal in the deploy's report.
  assert.match(broken.stderr, /unknown directive "retrun" in \/etc\/nginx\/server\.d\/50-version\.conf:1/);
});

test('a configuration that passes the test but that nginx cannot load (a port in use) fails the deploy as well', { skip }, async () => {
  const pid = mainPid();
  writeFiles(repo, { 'machines/web/usr/local/opt/nginx/http.d/50-ssh-port.conf': 'server { listen 22; return 204; }\n' });
  const refused = cli(['deploy']);
  assert.equal(refused.status, 1, refused.stdout + refused.stderr);
  assert.match(refused.stderr, /bind\(\) to 0\.0\.0\.0:22 failed \(98: Address already in use\)/);
  assert.deepEqual(await request(`${base}/version`), { status: 200, body: 'v3\n' });
  assert.equal(mainPid(), pid);
  rmSync(join(repo, 'machines/web/usr/local/opt/nginx/http.d/50-ssh-port.conf'));
  const repaired = cli(['deploy']);
  assert.equal(repaired.status, 0, repaired.stderr);
  assertMachineIsItsGeneration(box!, 'web', 'the port in use given up');
});

test('nginx-local.service passes systemd-analyze verify and is sandboxed', { skip }, (t) => {
  const verify = box!.ssh('web', 'systemd-analyze verify /usr/local/lib/systemd/system/nginx-local.service');
  assert.equal(verify.status, 0, verify.stdout + verify.stderr);
  const score = exposure(box!, 'web', 'nginx-local.service');
  t.diagnostic(`systemd-analyze security nginx-local.service: ${score}`);
  // 1.4 when the lambda layer gave each request a user of its own: no worse since.
  assert.ok(score <= 1.4, `exposure ${score}`);
});
