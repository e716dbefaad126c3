// The standard base layer `_` on a sandbox machine: keys-only sshd, the
// failed-unit monitor's alerts at a webhook, and the nftables input filter.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createConnection } from 'node:net';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { makeRepo, runCli, writeFiles } from '../helpers/repo.ts';
import { testSandbox } from '../helpers/sandbox.ts';
import { SmtpReceiver } from '../helpers/smtp.ts';
import { WebhookReceiver } from '../helpers/webhook.ts';

const { box, skip } = testSandbox('base');
const token = 'webhook-t0ken-that-must-not-leak';
const password = 'Horse-Battery-9';
const sys = 'layers/probe/usr/local/lib/systemd/system';
/** A test layer: a TCP listener on 8080 and one on 8081; only 8080 is opened by an input.d file. */
const probe = (port: number) => ({
  [`${sys}/probe-${port}.socket`]: `[Socket]\nListenStream=${port}\nAccept=yes\n`,
  [`${sys}/probe-${port}@.service`]: `[Service]\nExecStart=/bin/echo probe ${port}\nStandardOutput=socket\nDynamicUser=yes\n`,
  [`${sys}/sockets.target.wants/probe-${port}.socket`]: { link: `../probe-${port}.socket` },
});
const repo = makeRepo({
  'homecloud.json': '{"stdlib": true}\n',
  'inventory.json': '{}\n',
  'machines/one/usr/local/opt/initd/layers/10-layers.txt': '+ probe\n',
  ...probe(8080),
  ...probe(8081),
  'layers/probe/usr/local/etc/nftables/input.d/50-probe.nft': 'tcp dport 8080 accept\n',
  'askpass': { content: `#!/bin/sh\necho '${password}'\n`, mode: 0o755 },
});
const cli = (args: string[]) => runCli(['-C', repo, '--sandbox', ...args], { env: { HOMECLOUD_SANDBOX: box?.paths.home ?? '' } });
const on = (command: string) => box!.ssh('one', command).stdout;
const address = () => box!.sandbox.list().find((machine) => machine.name === 'one')!.address;
const hook = new WebhookReceiver();
const smtp = new SmtpReceiver();

/** A password login as alice, with nothing but the password to offer. */
function passwordLogin() {
  return spawnSync('ssh', [
    '-F', '/dev/null', '-o', `UserKnownHostsFile=${box!.paths.knownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'ConnectTimeout=5',
    '-o', 'PubkeyAuthentication=no', '-o', 'IdentityAgent=none', '-o', 'PreferredAuthentications=password,keyboard-interactive', '-o', 'NumberOfPasswordPrompts=1',
    `alice@${address()}`, 'true',
  ], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SSH_ASKPASS: join(repo, 'askpass'), SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' } });
}

/** What a TCP connection from the host reads: the listener's line, or how it ended. */
function connect(port: number): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    const socket = createConnection({ host: address(), port, timeout: 2000 });
    socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
    socket.on('end', () => resolve(data.trim()));
    socket.on('timeout', () => { socket.destroy(); resolve('dropped'); });
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
  });
}

test('keys only: a password login that worked before the first deploy is refused after it; no unit is failed; the webhook token stays secret', { skip }, async () => {
  await box!.up(['one']);
  await hook.listen(box!.paths.hostAddress);
  writeFiles(repo, { 'facts/one.env': `ENV_ALERT_WEBHOOK_URL=${hook.url}\nENV_ALERT_WEBHOOK_TOKEN=${token}\n` });
  // The sandbox image says "PasswordAuthentication no" itself: without that line, and with a user that has a password, passwords work.
  on(`sed -i '/^PasswordAuthentication/d' /etc/ssh/sshd_config.d/10-homecloud-sandbox.conf && systemctl reload ssh && useradd -m alice && echo 'alice:${password}' | chpasswd`);
  const before = passwordLogin();
  assert.equal(before.status, 0, `a password login works before the base layer: ${before.stderr}`);

  const deploy = cli(['deploy']);
  assert.equal(deploy.status, 0, deploy.stderr + deploy.stdout);
  for (const action of ['start homecloud-alert.service', 'start homecloud-firewall.service', 'reload ssh.service', 'restart systemd-journald.service']) assert.ok(deploy.stdout.includes(action), `${action}: ${deploy.stdout}`);
  assert.ok(!`${deploy.stdout}${deploy.stderr}`.includes(token), 'the token never appears in the output');
  assert.equal(on('systemctl --failed --plain --no-legend'), '');
  assert.equal(on('stat -c %a /usr/local/etc/homecloud/alert.env'), '600', 'the file with the token is root\'s alone');

  const after = passwordLogin();
  assert.notEqual(after.status, 0);
  assert.match(after.stderr, /Permission denied \(publickey\)/);
  assert.match(on('sshd -T'), /^passwordauthentication no\nkbdinteractiveauthentication no$/m);
  assert.equal(box!.ssh('one', 'echo keys still work').stdout, 'keys still work');
});

test('a unit entering the failed state gives one alert with its journal lines, and one when it recovers; a unit systemd restarts gives one when systemd gives up', { skip }, async () => {
  const failing = (name: string, extra = '') => `[Service]\n${extra}ExecStart=/bin/sh -c 'test -e /run/${name}-ok && exec sleep infinity; echo "${name}: cannot work" >&2; exit 3'\n`;
  on(`cat > /etc/systemd/system/doomed.service <<'EOF'\n${failing('doomed')}EOF
cat > /etc/systemd/system/crashy.service <<'EOF'\n[Unit]\nStartLimitBurst=3\nStartLimitIntervalSec=1min\n${failing('crashy', 'Restart=always\nRestartSec=100ms\n')}EOF
cat > /etc/systemd/system/sentinel.service <<'EOF'\n${failing('sentinel')}EOF
systemctl daemon-reload && systemctl start doomed`);

  const failed = await hook.waitFor((alert) => alert.unit === 'doomed.service');
  assert.ok(failed, `an alert came; the monitor said: ${on('systemctl status doomed homecloud-alert --no-pager; journalctl -u homecloud-alert --no-pager')}`);
  assert.deepEqual([failed.state, failed.machine, failed.authorization], ['failed', 'one', `Bearer ${token}`]);
  assert.match(failed.text, /^doomed\.service failed on one\n/);
  assert.match(failed.journal, /doomed: cannot work/);
  assert.ok(!`${failed.journal}`.includes('crashy'), 'only the unit\'s own lines');

  // Crashes that systemd restarts are not failures; the failure is when it stops restarting.
  on('systemctl start crashy');
  assert.ok(await hook.waitFor((alert) => alert.unit === 'crashy.service'), 'crashy\'s alert came');
  // Units starting and stopping wake the monitor: a later failure is news, the earlier ones are not.
  on('systemctl restart homecloud-firewall; systemctl start sentinel');
  assert.ok(await hook.waitFor((alert) => alert.unit === 'sentinel.service'), 'sentinel\'s alert came');

  on('touch /run/doomed-ok /run/crashy-ok && systemctl start doomed && systemctl reset-failed crashy && systemctl start crashy');
  assert.ok(await hook.waitFor((alert) => alert.unit === 'doomed.service' && alert.state === 'recovered'), 'doomed recovered');
  assert.ok(await hook.waitFor((alert) => alert.unit === 'crashy.service' && alert.state === 'recovered'), 'crashy recovered');
  assert.deepEqual(hook.about('doomed.service'), ['failed one', 'recovered one']);
  assert.deepEqual(hook.about('crashy.service'), ['failed one', 'recovered one']);
  assert.deepEqual(hook.about('sentinel.service'), ['failed one']);
  assert.equal(on('journalctl -q -o cat MESSAGE_ID=fe2ecc3b1e744237975646bf8cacac04 HOMECLOUD_UNIT=doomed.service'), 'doomed.service entered the failed state\ndoomed.service recovered');
  on('touch /run/sentinel-ok && systemctl start sentinel');
  assert.ok(await hook.waitFor((alert) => alert.unit === 'sentinel.service' && alert.state === 'recovered'), 'sentinel recovered');
});

test('with SMTP facts an alert goes by mail as well; a password is never sent over a connection without TLS', { skip }, async () => {
  await smtp.listen(box!.paths.hostAddress);
  const failing = (name: string) => `cat > /etc/systemd/system/${name}.service <<'EOF'\n[Service]\nExecStart=/bin/sh -c 'echo "${name}: cannot work" >&2; exit 3'\nEOF\nsystemctl daemon-reload && systemctl start ${name}`;
  const facts = `ENV_ALERT_WEBHOOK_URL=${hook.url}\nENV_ALERT_WEBHOOK_TOKEN=${token}\nENV_ALERT_SMTP_URL=${smtp.url}\nENV_ALERT_MAIL_TO=ops@example.test,oncall@example.test\n`;
  writeFiles(repo, { 'facts/one.env': facts });
  assert.match(cli(['deploy']).stdout, /restart homecloud-alert\.service/);
  on(failing('mailed'));
  assert.ok(await hook.waitFor((alert) => alert.unit === 'mailed.service'), 'the webhook still hears of it');
  const about = (unit: string) => smtp.mails.filter((mail) => mail.data.includes(`Subject: [homecloud] ${unit} `));
  const deadline = Date.now() + 30_000;
  while (about('mailed.service').length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(about('mailed.service').length, 1, 'one mail');
  const [mail] = about('mailed.service');
  assert.deepEqual([mail!.from, mail!.to], ['homecloud@one', ['ops@example.test', 'oncall@example.test']]);
  assert.match(mail!.data, /^Subject: \[homecloud\] mailed\.service failed on one\r$/m);
  assert.match(mail!.data, /mailed: cannot work/);

  const secret = 'smtp-pa55word-not-in-clear';
  writeFiles(repo, { 'facts/one.env': `${facts}ENV_ALERT_SMTP_USER=alerts\nENV_ALERT_SMTP_PASSWORD=${secret}\n` });
  const deploy = cli(['deploy']);
  assert.ok(!`${deploy.stdout}${deploy.stderr}`.includes(secret));
  on(failing('unmailed'));
  assert.ok(await hook.waitFor((alert) => alert.unit === 'unmailed.service'), 'the webhook hears of it');
  let refused = '';
  while (!refused && Date.now() < deadline + 30_000) refused = on('journalctl -u homecloud-alert -q -o cat --grep="the mail server did not take .unmailed"');
  assert.match(refused, /unmailed\.service failed on one/, 'the mail was not sent, and the journal says so');
  assert.equal(about('unmailed.service').length, 0, 'no mail');
  assert.ok(!smtp.commands.some((line) => /^AUTH/i.test(line) || line.includes(Buffer.from(secret).toString('base64').slice(0, 8))), 'no password over plain text');
  on('systemctl reset-failed mailed unmailed');
});

test('the input filter drops a port no layer opens, takes one an input.d file opens, reloads when those files change or go, and keeps SSH', { skip }, async () => {
  assert.equal(on('exec 3<>/dev/tcp/127.0.0.1/8081 && cat <&3'), 'probe 8081', 'something listens on 8081: a drop from outside is the filter\'s');
  assert.equal(await connect(8080), 'probe 8080');
  assert.equal(await connect(8081), 'dropped');

  // An SSH session open while the rules are replaced goes on.
  const session = spawn('ssh', [...box!.sandbox.sshArguments('one'), 'sleep 2; echo still here'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let sessionOutput = '';
  session.stdout.on('data', (chunk: Buffer) => (sessionOutput += chunk.toString()));
  const sessionEnd = new Promise<number | null>((resolve) => session.on('exit', resolve));
  writeFiles(repo, { 'layers/probe/usr/local/etc/nftables/input.d/60-more.nft': 'tcp dport 8081 accept\n' });
  const opened = cli(['deploy']);
  assert.equal(opened.status, 0, opened.stderr);
  assert.match(opened.stdout, /reload homecloud-firewall\.service/);
  assert.equal(await connect(8081), 'probe 8081');
  assert.equal(await sessionEnd, 0);
  assert.equal(sessionOutput.trim(), 'still here');

  rmSync(join(repo, 'layers/probe/usr/local/etc/nftables/input.d/60-more.nft'));
  const closed = cli(['deploy']);
  assert.match(closed.stdout, /reload homecloud-firewall\.service/);
  assert.equal(await connect(8081), 'dropped');

  // A file nft cannot read fails the deploy and changes nothing: the rules before stay, SSH too.
  writeFiles(repo, { 'layers/probe/usr/local/etc/nftables/input.d/70-broken.nft': 'tcp dport 8082 acept\n' });
  const broken = cli(['deploy']);
  assert.equal(broken.status, 1, broken.stdout);
  assert.match(broken.stderr, /homecloud-firewall\.service/);
  assert.equal(box!.ssh('one', 'echo ssh works').stdout, 'ssh works');
  assert.equal(await connect(8080), 'probe 8080');
  assert.equal(await connect(8081), 'dropped');
  assert.match(on('journalctl -u homecloud-firewall -q -o cat'), /70-broken\.nft:1:.*Error: syntax error/s);
  rmSync(join(repo, 'layers/probe/usr/local/etc/nftables/input.d/70-broken.nft'));
  const repaired = cli(['deploy']);
  assert.equal(repaired.status, 0, repaired.stderr);
  assert.equal(on('systemctl --failed --plain --no-legend'), '');
});
