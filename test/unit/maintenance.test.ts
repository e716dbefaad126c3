// The maintenance layer offline: its scripts run by bash on the host against fake findmnt, btrfs, apt-get and du
// (their paths on the machine pointed into a scratch directory), and its templates as a build renders them.
// test/e2e/maintenance.test.ts runs the layer on a sandbox machine.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { buildError, buildOne, layerList, makeRepo, projectRoot, readTree, writeFiles } from '../helpers/repo.ts';

const layer = join(projectRoot, 'layers/maintenance');
const scratch = mkdtempSync(join(tmpdir(), 'homecloud-maintenance-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const bin = join(scratch, 'bin');
const calls = join(scratch, 'calls');
mkdirSync(bin);
mkdirSync(join(scratch, 'lock'));
mkdirSync(join(scratch, 'run'));

/** A fake command: appends its arguments to the calls file, then runs `body`. */
function fake(name: string, body: string): void {
  writeFileSync(join(bin, name), `#!/bin/bash\necho "${name} $*" >> ${calls}\n${body}\n`);
  chmodSync(join(bin, name), 0o755);
}
// findmnt prints $FINDMNT (every mount, as the script asks for them), or fails as it does when it cannot read them.
fake('findmnt', '[[ -z ${FINDMNT_FAILS-} ]] || { echo "findmnt: cannot read mountinfo" >&2; exit 1; }\nprintf "%s" "$FINDMNT"');
// btrfs: a balance running where $BALANCE_RUNNING says; error counters where $ERRORS says; a scrub that fails where $SCRUB_FAILS says.
fake(
  'btrfs',
  `case "$1 $2" in
  "scrub start") [[ " \${SCRUB_FAILS-} " != *" \${!#} "* ]] ;;
  "device stats") if [[ " \${ERRORS-} " == *" $4 "* ]]; then printf '[/dev/sdb].write_io_errs    0\\n[/dev/sdb].corruption_errs  3\\n'; exit 64; fi ;;
  "balance status") if [[ " \${BALANCE_RUNNING-} " == *" $3 "* ]]; then echo "Balance on '$3' is running"; exit 1; fi; echo "No balance found on '$3'" ;;
esac`,
);
fake('apt-get', '');
fake('du', 'printf "%s\\t%s\\n" "$DU_BYTES" "${!#}"');

/**
 * Runs a script of the layer with its machine paths in the scratch directory: the base layer's library from the
 * checkout, locks, /run and apt's cache. Returns its status, output and the fake commands it ran.
 */
function run(script: string, args: string[], env: Record<string, string> = {}) {
  const text = readFileSync(join(layer, 'usr/local/libexec/homecloud', script), 'utf8')
    .replaceAll('/usr/local/lib/homecloud/lib.bash', join(projectRoot, 'layers/_/usr/local/lib/homecloud/lib.bash'))
    .replaceAll('/run/lock/', `${scratch}/lock/`)
    .replaceAll('/run/reboot-required', `${scratch}/run/reboot-required`)
    .replaceAll('/usr/local/libexec/homecloud/alert', join(bin, 'alert'))
    .replaceAll('/var/cache/apt/archives', `${scratch}/archives`);
  const copy = join(scratch, script);
  writeFileSync(copy, text, { mode: 0o755 });
  rmSync(calls, { force: true });
  const result = spawnSync(copy, args, { encoding: 'utf8', env: { PATH: `${bin}:/usr/bin:/bin`, ...env } });
  const ran = existsSync(calls) ? readFileSync(calls, 'utf8').split('\n').filter(Boolean) : [];
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, ran };
}

/** findmnt --raw lines (FSTYPE MAJ:MIN VFS-OPTIONS TARGET): a root on btrfs with two more subvolumes mounted, a second
 * btrfs file system mounted read-only and writable, a third read-only only, and the rest. */
const mounts = [
  'btrfs 0:31 rw,relatime /',
  'proc 0:22 rw,nosuid,nodev,noexec /proc',
  'btrfs 0:31 rw,relatime /home',
  'ext4 8:1 rw,relatime /boot',
  'btrfs 0:40 ro,relatime /srv/backup',
  'btrfs 0:31 ro,relatime /var/lib/machines',
  'btrfs 0:40 rw,noatime /mnt/backup\\x20copy',
  'btrfs 0:41 ro,relatime /media/archive',
  'tmpfs 0:25 rw,nosuid /run',
].join('\n');

test('list: each btrfs file system once, at a writable mount point where it has one; names unescaped', () => {
  const listed = run('btrfs-maintenance', ['list'], { FINDMNT: `${mounts}\n` });
  assert.deepEqual([listed.status, listed.stderr], [0, '']);
  assert.equal(listed.stdout, 'rw /\nrw /mnt/backup copy\nro /media/archive\n');
});

test('no btrfs file system: scrub and balance say so and succeed; findmnt failing is a failure, not "none"', () => {
  for (const job of ['scrub', 'balance']) {
    const none = run('btrfs-maintenance', [job], { FINDMNT: 'ext4 8:1 rw,relatime /\ntmpfs 0:25 rw /run\n', USAGE: '50', LIMIT: '10' });
    assert.deepEqual([none.status, none.stderr], [0, `btrfs-maintenance: no btrfs file system is mounted here: nothing to ${job}\n`]);
    assert.deepEqual(
      none.ran.filter((call) => call.startsWith('btrfs')),
      [],
    );
    const failing = run('btrfs-maintenance', [job], { FINDMNT_FAILS: '1', USAGE: '50', LIMIT: '10' });
    assert.equal(failing.status, 1);
    assert.match(failing.stderr, /findmnt could not list the mounts/);
  }
});

test('scrub: each file system once (read-only where it is mounted so); errors found, or error counters, fail the run', () => {
  const clean = run('btrfs-maintenance', ['scrub'], { FINDMNT: mounts });
  assert.deepEqual([clean.status, clean.stderr], [0, '']);
  assert.deepEqual(
    clean.ran.filter((call) => call.startsWith('btrfs')),
    [
      'btrfs scrub start -B /',
      'btrfs device stats --check /',
      'btrfs scrub start -B /mnt/backup copy',
      'btrfs device stats --check /mnt/backup copy',
      'btrfs scrub start -B -r /media/archive',
      'btrfs device stats --check /media/archive',
    ],
  );

  const errors = run('btrfs-maintenance', ['scrub'], { FINDMNT: mounts, ERRORS: '/media/archive', SCRUB_FAILS: '/' });
  assert.equal(errors.status, 1);
  assert.match(errors.stderr, /the scrub of \/ failed, or found errors it could not correct/);
  assert.match(
    errors.stderr,
    /errors on the devices of \/media\/archive \(btrfs device stats -z \/media\/archive resets the counters once dealt with\):\n\[\/dev\/sdb\]\.corruption_errs  3\n/,
  );
  assert.equal(errors.ran.filter((call) => call.startsWith('btrfs scrub start')).length, 3, 'a failure stops none of the others');
});

test('balance: writable file systems with the usage and limit filters, none whose balance runs already; bad settings refused', () => {
  const balanced = run('btrfs-maintenance', ['balance'], { FINDMNT: mounts, USAGE: '50', LIMIT: '10', BALANCE_RUNNING: '/mnt/backup copy' });
  assert.equal(balanced.status, 0, balanced.stderr);
  assert.deepEqual(
    balanced.ran.filter((call) => call.startsWith('btrfs balance start')),
    ['btrfs balance start -dusage=50,limit=10 -musage=50,limit=10 /'],
  );
  assert.match(balanced.stderr, /a balance of \/mnt\/backup copy is running already \(or paused\): not started again/);
  assert.match(balanced.stderr, /\/media\/archive is mounted read-only: not balanced/);

  for (const [usage, limit, message] of [
    ['101', '10', /USAGE=101 is not a percentage/],
    ['050', '10', /USAGE=050 is not a percentage/],
    ['50', '0', /LIMIT=0 is not a number of chunks/],
  ] as const) {
    const refused = run('btrfs-maintenance', ['balance'], { FINDMNT: mounts, USAGE: usage, LIMIT: limit });
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, message);
  }
});

test("apt-cache-limit: autoclean always; clean only when apt's cache still holds more than the limit", () => {
  const within = run('apt-cache-limit', [], { APT_CACHE_MAX: '500M', DU_BYTES: String(400 * 1024 * 1024) });
  assert.equal(within.status, 0, within.stderr);
  assert.deepEqual(within.ran, ['apt-get --quiet --quiet autoclean', `du --summarize --block-size=1 ${scratch}/archives`]);
  assert.equal(within.stderr, "apt-cache-limit: apt's cache holds 400M (at most 500M)\n");

  const over = run('apt-cache-limit', [], { APT_CACHE_MAX: '500M', DU_BYTES: String(600 * 1024 * 1024) });
  assert.equal(over.status, 0, over.stderr);
  assert.equal(over.ran.at(-1), 'apt-get --quiet --quiet clean');
  assert.equal(over.stderr, "apt-cache-limit: apt's cache held 600M, more than 500M: emptied\n");

  const bad = run('apt-cache-limit', [], { APT_CACHE_MAX: 'lots', DU_BYTES: '1' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /APT_CACHE_MAX=lots is not a size such as 500M/);
});

test('reboot-required: names the packages once each, in one notice through the alert script; without the file, no reboot is required', () => {
  const flag = join(scratch, 'run/reboot-required');
  const credentials = join(scratch, 'credentials');
  mkdirSync(credentials, { recursive: true });
  writeFileSync(join(credentials, 'alert.env'), 'MACHINE=nas\nWEBHOOK_URL=\n');
  fake('alert', 'exit "${ALERT_STATUS:-0}"');
  const env = { CREDENTIALS_DIRECTORY: credentials };
  rmSync(flag, { force: true });
  const none = run('reboot-required', [], env);
  assert.deepEqual([none.status, none.stderr, none.ran], [0, `reboot-required: no reboot is required (${flag} is not there)\n`, []]);

  writeFileSync(flag, '*** System restart required ***\n');
  const unnamed = run('reboot-required', [], env);
  assert.equal(unnamed.status, 0);
  const since = `a reboot is required since \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC, by: packages not named in ${flag}\\.pkgs`;
  assert.match(unnamed.stderr, new RegExp(`^reboot-required: ${since}\\n$`));
  assert.equal(unnamed.ran.length, 1);
  assert.match(unnamed.ran[0]!, new RegExp(`^alert notice nas homecloud-reboot-required\\.service ${since} --unit=homecloud-reboot-required\\.service$`));

  writeFileSync(`${flag}.pkgs`, 'linux-image-6.1.0-28-amd64\nlibc6\nlinux-image-6.1.0-28-amd64\n');
  const named = run('reboot-required', [], env);
  assert.equal(named.status, 0);
  assert.match(named.stderr, /, by: libc6 linux-image-6\.1\.0-28-amd64\n$/);
  // A notifier that did not take it fails the unit: the failed-unit monitor then alerts.
  assert.equal(run('reboot-required', [], { ...env, ALERT_STATUS: '1' }).status, 1);
});

// The templates, built as a machine of the layer gets them.
const apt = '/etc/apt/apt.conf.d/52homecloud-upgrades.conf';
const patterns = (text: string) => [...text.matchAll(/^\t"(.*)";$/gm)].map((match) => match[1]);

test("by default: Debian's security updates only, no reboot, the journal kept a month, Debian's NTP servers, timesyncd installed", async () => {
  const root = makeRepo(layerList('maintenance'));
  const built = await buildOne(root, 'm');
  assert.equal(built.status, 'built', String(built.error));
  const conf = readTree(root, 'm', apt);
  assert.deepEqual(patterns(conf), [
    'origin=Debian,codename=${distro_codename}-security,label=Debian-Security',
    'origin=Debian,codename=${distro_codename},label=Debian-Security',
  ]);
  assert.match(conf, /^#clear Unattended-Upgrade::Origins-Pattern;$/m);
  assert.match(conf, /^Unattended-Upgrade::Automatic-Reboot "false";$/m);
  assert.doesNotMatch(conf, /Automatic-Reboot-Time/);
  assert.match(conf, /^APT::Periodic::Unattended-Upgrade "0";$/m);
  assert.match(readTree(root, 'm', '/usr/local/lib/systemd/journald.conf.d/60-homecloud-maintenance.conf'), /^\[Journal\]\nMaxRetentionSec=1month\n$/m);
  assert.doesNotMatch(readTree(root, 'm', '/usr/local/lib/systemd/timesyncd.conf.d/50-homecloud.conf'), /^NTP=/m);
  assert.match(readTree(root, 'm', '/usr/local/opt/initd/packages/maintenance.txt'), /^\+ systemd-timesyncd$/m);
  assert.equal(readTree(root, 'm', '/usr/local/etc/default/homecloud-upgrades.env').split('\n').at(-2), 'APT_CACHE_MAX=500M');
  assert.match(readTree(root, 'm', '/usr/local/etc/default/homecloud-btrfs-balance.env'), /^USAGE=50\nLIMIT=10$/m);
  for (const [timer, schedule] of [
    ['upgrades', 'daily'],
    ['fstrim', 'weekly'],
    ['btrfs-scrub', 'monthly'],
    ['btrfs-balance', 'weekly'],
  ])
    assert.match(
      readTree(root, 'm', `/usr/local/lib/systemd/system/homecloud-${timer}.timer.d/50-schedule.conf`),
      new RegExp(`^\\[Timer\\]\\nOnCalendar=${schedule}\\nRandomizedDelaySec=1h$`, 'm'),
    );
});

test('facts widen the origins, reboot at a time, set NTP servers, keep the journal for ever, leave timesyncd out', async () => {
  const root = makeRepo({
    ...layerList('maintenance'),
    'facts/m.json': JSON.stringify({
      ENV_MAINTENANCE_UPGRADE_ORIGINS: ['stable', 'updates', 'backports', 'origin=Jellyfin', 'site=apt.postgresql.org'],
      ENV_MAINTENANCE_REBOOT_AT: '03:30',
      ENV_MAINTENANCE_NTP_SERVERS: ['ntp1.example.org', '192.0.2.123'],
      ENV_MAINTENANCE_JOURNAL_RETENTION: '',
      ENV_MAINTENANCE_TIMESYNCD: 'no',
      ENV_MAINTENANCE_BALANCE_USAGE: 250,
      ENV_MAINTENANCE_SCRUB_ON: 'Sat *-*-1..7 04:00',
    }),
  });
  const built = await buildOne(root, 'm');
  assert.equal(built.status, 'built', String(built.error));
  const conf = readTree(root, 'm', apt);
  assert.deepEqual(patterns(conf).slice(2), [
    'origin=Debian,codename=${distro_codename},label=Debian',
    'origin=Debian,codename=${distro_codename}-updates',
    'origin=Debian Backports,codename=${distro_codename}-backports,label=Debian Backports',
    'origin=Jellyfin',
    'site=apt.postgresql.org',
  ]);
  assert.match(conf, /^Unattended-Upgrade::Automatic-Reboot "true";\n(.*\n)?Unattended-Upgrade::Automatic-Reboot-Time "03:30";$/m);
  assert.match(readTree(root, 'm', '/usr/local/lib/systemd/timesyncd.conf.d/50-homecloud.conf'), /^NTP=ntp1\.example\.org 192\.0\.2\.123$/m);
  assert.doesNotMatch(readTree(root, 'm', '/usr/local/lib/systemd/journald.conf.d/60-homecloud-maintenance.conf'), /MaxRetentionSec/);
  assert.doesNotMatch(readTree(root, 'm', '/usr/local/opt/initd/packages/maintenance.txt'), /^\+ systemd-timesyncd$/m);
  assert.match(readTree(root, 'm', '/usr/local/etc/default/homecloud-btrfs-balance.env'), /^USAGE=100$/m, 'clamped to 100');
  assert.match(readTree(root, 'm', '/usr/local/lib/systemd/system/homecloud-btrfs-scrub.timer.d/50-schedule.conf'), /^OnCalendar=Sat \*-\*-1\.\.7 04:00$/m);
});

test('an origin, reboot time or cache size that cannot be meant fails the build, naming the fact', async () => {
  for (const [fact, value, message] of [
    [
      'ENV_MAINTENANCE_UPGRADE_ORIGINS',
      'security',
      /52homecloud-upgrades\.m4\.conf:\d+: ENV_MAINTENANCE_UPGRADE_ORIGINS: "security" is not stable, updates, backports or a field/,
    ],
    ['ENV_MAINTENANCE_UPGRADE_ORIGINS', 'origin="x";', /ENV_MAINTENANCE_UPGRADE_ORIGINS: "origin="x";" is not/],
    [
      'ENV_MAINTENANCE_REBOOT_AT',
      '25:00',
      /52homecloud-upgrades\.m4\.conf:\d+: ENV_MAINTENANCE_REBOOT_AT is "25:00": a time of day \(HH:MM\), now, or empty for never/,
    ],
    ['ENV_MAINTENANCE_APT_CACHE_MAX', '1 GB', /homecloud-upgrades\.m4\.env:\d+: ENV_MAINTENANCE_APT_CACHE_MAX is "1 GB": a size such as 500M/],
  ] as const) {
    const root = makeRepo(layerList('maintenance'));
    writeFiles(root, { 'facts/m.json': JSON.stringify({ [fact]: value }) });
    const error = await buildError(root);
    assert.match(error.toString(), message, `${fact}=${value}`);
  }
});
