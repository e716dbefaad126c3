// The standard journal layer on sandbox machines: a machine ships its journal to the
// collector over TLS with its own certificate; only the repository's machines get in,
// only a machine raises its own alerts, and the collector stays within its space.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { assertMachineIsItsGeneration } from '../helpers/invariant.ts';
import { makeRepo, writeFiles } from '../helpers/repo.ts';
import { sandboxCli, testSandbox } from '../helpers/sandbox.ts';
import { WebhookReceiver } from '../helpers/webhook.ts';

const { box, skip } = testSandbox('journal');
const repo = makeRepo({
  'homecloud.json': '{"stdlib": true}\n',
  'inventory.json': '{}\n',
  'machines/collector/usr/local/opt/initd/layers/10-layers.txt': '+ journal\n',
  'machines/shipper/usr/local/opt/initd/layers/10-layers.txt': '+ journal\n',
  'facts/collector.json': '{"ENV_JOURNAL_COLLECTOR": "collector"}\n',
});
const scratch = mkdtempSync(join(tmpdir(), 'homecloud-journal-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const cli = sandboxCli(box, repo);
const on = (machine: string, command: string) => box!.ssh(machine, command).stdout;
const address = (machine: string) => box!.sandbox.list().find((m) => m.name === machine)!.address;
const hook = new WebhookReceiver();
const collectorFacts = (more: Record<string, string> = {}) => JSON.stringify({ ENV_JOURNAL_COLLECTOR: 'collector', ...more });

function deploy(context: string, machines: string[] = []) {
  const result = cli(['deploy', ...machines]);
  assert.equal(result.status, 0, `${context}: ${result.stdout}${result.stderr}`);
  for (const machine of machines.length ? machines : ['collector', 'shipper']) assertMachineIsItsGeneration(box!, machine, context);
  return result;
}

/** The lines the collector has from a machine, with a tag. */
const collected = (tag: string) => on('collector', `journalctl --directory=/var/log/journal/remote -q -o cat -t ${tag}`);

async function eventually<T>(what: string, read: () => T, done: (value: T) => boolean, seconds = 10): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = read();
    if (done(value)) return value;
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(value)} after ${seconds} s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

test(
  "one deploy brings the certificates where they belong, and a line logged on a machine is in the collector's journal within 5 s, in files named after the machine",
  { skip },
  async () => {
    await box!.up(['collector', 'shipper']);
    await hook.listen(box!.paths.hostAddress);
    // Only the collector has a notifier: the shipper's alerts reach the webhook through it.
    writeFiles(repo, {
      'facts/collector.env': `ENV_ALERT_WEBHOOK_URL=${hook.url}\n`,
      'facts/shipper.json': JSON.stringify({ ENV_JOURNAL_COLLECTOR: 'collector', ENV_JOURNAL_COLLECTOR_HOST: address('collector') }),
    });
    const first = deploy('the first deploy');
    // The machines made their keys in the first round; the second brings each the others' certificates.
    assert.match(first.stdout, /published new public material .*: building and deploying again/);
    assert.match(first.stdout, /^collector .*start homecloud-journal-remote@shipper\.socket/m);
    assert.equal(
      on('collector', 'stat -c "%a %U" /var/lib/homecloud-journal /var/lib/homecloud-journal/key.pem'),
      '700 root\n600 root',
      "the key stays root's, on its machine",
    );
    for (const machine of ['collector', 'shipper']) assert.equal(on(machine, 'systemctl --failed --plain --no-legend'), '', machine);
    assert.match(cli(['deploy']).stdout, /Nothing to do/);

    const line = `shipped-${process.pid}-${Date.now()}`;
    on('shipper', `logger -t e2e ${line}`);
    await eventually(
      'the line at the collector',
      () => collected('e2e'),
      (text) => text.includes(line),
      5,
    );
    assert.match(on('collector', 'ls /var/log/journal/remote'), /^remote-shipper\.journal$/m);
  },
);

test('a unit failing on a machine gives one alert from the collector, naming the machine, with its lines; and one when it recovers', { skip }, async () => {
  const failing = (name: string) =>
    `[Service]\nExecStart=/bin/sh -c 'test -e /run/${name}-ok && exec sleep infinity; echo "${name}: cannot work" >&2; exit 3'\n`;
  on(
    'shipper',
    `cat > /etc/systemd/system/doomed.service <<'EOF'\n${failing('doomed')}EOF
cat > /etc/systemd/system/sentinel.service <<'EOF'\n${failing('sentinel')}EOF
systemctl daemon-reload && systemctl start doomed`,
  );
  const failed = await hook.waitFor((alert) => alert.unit === 'doomed.service', 120);
  const logs = () =>
    [
      on('shipper', 'journalctl -u homecloud-alert -u homecloud-journal-upload --no-pager | tail -n 20'),
      on(
        'collector',
        'journalctl -u homecloud-journal-alerts -u homecloud-journal-gate -u "homecloud-journal-remote@*" --no-pager | tail -n 30; ls -la /var/log/journal/remote',
      ),
    ].join('\n');
  assert.ok(failed, `an alert came; the machines say:\n${logs()}`);
  assert.deepEqual([failed.state, failed.machine], ['failed', 'shipper']);
  assert.match(failed.text, /^doomed\.service failed on shipper\n/);
  assert.match(failed.journal, / shipper sh\[\d+\]: doomed: cannot work/);
  // The shipper's uploader starting again sends its last entries again: still one alert.
  on('shipper', 'systemctl restart homecloud-journal-upload && systemctl start sentinel');
  assert.ok(await hook.waitFor((alert) => alert.unit === 'sentinel.service', 120), 'a later failure is forwarded');
  on('shipper', 'touch /run/doomed-ok && systemctl start doomed');
  assert.ok(await hook.waitFor((alert) => alert.unit === 'doomed.service' && alert.state === 'recovered', 120), 'the recovery is forwarded');
  assert.deepEqual(hook.about('doomed.service'), ['failed shipper', 'recovered shipper']);
  assert.deepEqual(hook.about('sentinel.service'), ['failed shipper']);
  assert.ok(
    hook.alerts.every((alert) => alert.machine === 'shipper'),
    'the collector itself had nothing to report',
  );
});

test(
  'a host that is not one of the machines cannot upload: the port is closed to it, and with the port open TLS refuses it, with or without a certificate of its own',
  { skip },
  () => {
    const upload = (certificate: string[]) =>
      spawnSync(
        'curl',
        [
          '-sS',
          '--max-time',
          '5',
          '-k',
          ...certificate,
          '-H',
          'Content-Type: application/vnd.fdo.journal',
          '--data-binary',
          '__REALTIME_TIMESTAMP=1796000000000000\n__MONOTONIC_TIMESTAMP=1\n_BOOT_ID=0123456789abcdef0123456789abcdef\nMESSAGE=forged\nSYSLOG_IDENTIFIER=forged\nMESSAGE_ID=fe2ecc3b1e744237975646bf8cacac04\nHOMECLOUD_ALERT=failed\nHOMECLOUD_MACHINE=shipper\nHOMECLOUD_UNIT=FORGED-postgresql.service\n_SYSTEMD_UNIT=homecloud-alert.service\n\n',
          `https://${address('collector')}:19532/upload`,
        ],
        { encoding: 'utf8' },
      );
    const closed = upload([]);
    assert.notEqual(closed.status, 0, 'the firewall drops it');
    assert.match(closed.stderr, /timed out|Couldn't connect|Connection refused/);

    // Open the port to the host's network: the gate still wants a certificate that a machine published.
    writeFiles(repo, { 'facts/collector.json': collectorFacts({ ENV_JOURNAL_SOURCES: `${box!.paths.hostAddress}/32` }) });
    deploy('the port open to the host', ['collector']);
    const made = spawnSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        join(scratch, 'key.pem'),
        '-out',
        join(scratch, 'cert.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=shipper',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(made.status, 0, made.stderr);
    for (const certificate of [[], ['--cert', join(scratch, 'cert.pem'), '--key', join(scratch, 'key.pem')]]) {
      const refused = upload(certificate);
      assert.match(
        refused.stdout + refused.stderr,
        /400 No required SSL certificate|400 The SSL certificate error|alert|handshake/i,
        `refused with ${certificate.length ? 'a certificate of its own' : 'no certificate'}`,
      );
    }
    assert.equal(collected('forged'), '', 'nothing reached a journal');
    writeFiles(repo, { 'facts/collector.json': collectorFacts() });
    deploy('the port closed again', ['collector']);
  },
);

test('a record that an unprivileged process on a machine writes to look like an alert is collected, but raises none', { skip }, async () => {
  on(
    'shipper',
    `runuser -u nobody -- logger --journald <<'EOF'
MESSAGE_ID=fe2ecc3b1e744237975646bf8cacac04
MESSAGE=FORGED-postgresql.service entered the failed state
SYSLOG_IDENTIFIER=homecloud-alert
HOMECLOUD_ALERT=failed
HOMECLOUD_MACHINE=shipper
HOMECLOUD_UNIT=FORGED-postgresql.service
EOF`,
  );
  await eventually(
    'the forged record at the collector',
    () => on('collector', 'journalctl --directory=/var/log/journal/remote -q -o cat HOMECLOUD_UNIT=FORGED-postgresql.service'),
    (text) => text.includes('FORGED'),
    10,
  );
  // The forwarder looks every 2 s: give it several rounds.
  await new Promise((resolve) => setTimeout(resolve, 6000));
  assert.deepEqual(hook.about('FORGED-postgresql.service'), []);
});

test('alerts are limited per machine and unit; a summary says how many were dropped', { skip }, async () => {
  writeFiles(repo, { 'facts/collector.json': collectorFacts({ ENV_JOURNAL_ALERT_BURST: '2', ENV_JOURNAL_ALERT_INTERVAL: '20s' }) });
  deploy('a small burst', ['collector']);
  // A unit that fails, then runs, then fails again: an alert each time.
  on(
    'shipper',
    `cat > /etc/systemd/system/flapping.service <<'EOF'\n[Service]\nExecStart=/bin/sh -c 'test -e /run/flap-ok && exec sleep infinity; exit 3'\nEOF
systemctl daemon-reload`,
  );
  on(
    'shipper',
    'for i in 1 2 3 4 5; do rm -f /run/flap-ok; systemctl start flapping.service; sleep 1.5; touch /run/flap-ok; systemctl start flapping.service; sleep 1.5; systemctl stop flapping.service; done',
  );
  const summary = await hook.waitFor((alert) => alert.unit === 'flapping.service' && alert.state === 'dropped', 90);
  assert.ok(summary, `a summary came: ${JSON.stringify(hook.about('flapping.service'))}`);
  assert.match(summary.text, /^\d+ alerts about flapping\.service on shipper were dropped/);
  const forwarded = hook.about('flapping.service').filter((about) => !about.startsWith('dropped'));
  assert.equal(forwarded.length, 2, `two forwarded before the limit: ${JSON.stringify(hook.about('flapping.service'))}`);
});

test('1 GB uploaded by a machine leaves the collector within its space, and one huge entry within its memory', { skip }, async () => {
  writeFiles(repo, { 'facts/collector.json': collectorFacts({ ENV_JOURNAL_REMOTE_MAX_USE: '96M', ENV_JOURNAL_REMOTE_FILE_MAX: '16M' }) });
  deploy('a small space', ['collector']);
  // Uploaded as the shipper, with its own certificate: random text, which the journal cannot compress or share.
  const upload = (generate: string) =>
    `${generate} | curl -sS --max-time 600 --cert /var/lib/homecloud-journal/cert.pem --key /var/lib/homecloud-journal/key.pem --cacert /usr/local/etc/homecloud/journal/collector.pem -H 'Content-Type: application/vnd.fdo.journal' -X POST -T - https://${address('collector')}:19532/upload`;
  box!.ssh(
    'shipper',
    upload(
      `head -c 1000000000 /dev/urandom | base64 -w 1000 | awk '{ printf "__REALTIME_TIMESTAMP=%d\\n__MONOTONIC_TIMESTAMP=%d\\n_BOOT_ID=0123456789abcdef0123456789abcdef\\nSYSLOG_IDENTIFIER=flood\\nMESSAGE=%s\\n\\n", 1796000000000000 + NR, NR, $0 }'`,
    ),
  );
  const limit = 96 * 1024 * 1024;
  const used = await eventually(
    "the collected journals' size",
    () => Number(on('collector', 'du -sb /var/log/journal/remote | cut -f1')),
    (bytes) => bytes <= limit,
    20,
  );
  assert.ok(used <= limit, `${used} bytes`);
  assert.ok(Number(on('collector', 'journalctl --directory=/var/log/journal/remote -q -t flood | wc -l')) > 1000, 'the newest of it is kept');

  // One entry of 600 MB: the shipper's receiver may take 256 MiB, and starts again for the next upload.
  assert.equal(on('collector', 'systemctl show -p MemoryMax --value homecloud-journal-remote@shipper.service'), String(256 * 1024 * 1024));
  box!.ssh(
    'shipper',
    upload(
      `{ printf '__REALTIME_TIMESTAMP=1796000000000000\\n__MONOTONIC_TIMESTAMP=1\\n_BOOT_ID=0123456789abcdef0123456789abcdef\\nMESSAGE='; head -c 600000000 /dev/zero | tr '\\0' a; printf '\\n\\n'; }`,
    ),
  );
  const line = `after-the-flood-${Date.now()}`;
  on('shipper', `logger -t e2e ${line}`);
  await eventually(
    'a line after the huge entry',
    () => collected('e2e'),
    (text) => text.includes(line),
    30,
  );
  assert.match(on('collector', "free -b | awk '/^Mem:/ { print $7 }'"), /^\d+$/);
});

test('a unit file the collector has but does not run changes: the deploy leaves it stopped and succeeds', { skip }, () => {
  writeFiles(repo, { 'facts/collector.json': collectorFacts({ ENV_JOURNAL_REMOTE_MAX_USE: '1G' }) });
  const unit = on('collector', 'cat /usr/local/lib/systemd/system/homecloud-journal-upload.service');
  writeFiles(repo, {
    'machines/collector/usr/local/lib/systemd/system/homecloud-journal-upload.service': unit.replace('RestartSec=10s', 'RestartSec=20s') + '\n',
  });
  const deployed = deploy('a unit file changed', ['collector']);
  assert.match(deployed.stdout, /restart homecloud-journal-upload\.service/);
  assert.equal(
    on('collector', 'systemctl is-active homecloud-journal-upload; cat /usr/local/etc/default/homecloud-journal-vacuum.env | tail -1'),
    'inactive\nMAX_USE=1G',
  );
  assert.equal(readFileSync(join(repo, 'var/public/collector/journal.crt'), 'utf8').startsWith('-----BEGIN CERTIFICATE-----'), true);
});
