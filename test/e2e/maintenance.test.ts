// The maintenance layer on a sandbox machine of the cloud image (its root is btrfs; it reaches no mirror): its timers
// run, its units verify, fstrim and the btrfs jobs work under their sandboxes, unattended upgrades install from a
// local repository (Debian's security updates only, then more by a fact), and what goes wrong (a reboot an upgrade
// requires, a mirror it cannot reach) is one alert each at a webhook.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertMachineIsItsGeneration } from '../helpers/invariant.ts';
import { makeRepo, writeFiles } from '../helpers/repo.ts';
import { sandboxCli, testSandbox } from '../helpers/sandbox.ts';
import { eventually } from '../helpers/web.ts';
import { WebhookReceiver } from '../helpers/webhook.ts';

const { box, skip } = testSandbox('maintenance', 'cloud');
const repo = makeRepo({
  'inventory.json': '{}\n',
  'machines/one/usr/local/opt/initd/layers/10-layers.txt': '+ maintenance\n',
});
const cli = sandboxCli(box, repo);
const on = (command: string) => box!.ssh('one', command);
const hook = new WebhookReceiver();
const units = '/usr/local/lib/systemd/system';
const timers = ['homecloud-upgrades.timer', 'homecloud-fstrim.timer', 'homecloud-btrfs-scrub.timer', 'homecloud-btrfs-balance.timer'];
/** How long to go on listening after an alert, for a second one that must not come. */
const settle = 5000;

/** Deploys with these facts (and the webhook, and no random delay), and checks the machine is its generation. */
function deploy(what: string, facts: Record<string, string> = {}) {
  writeFiles(repo, { 'facts/one.json': JSON.stringify({ ENV_ALERT_WEBHOOK_URL: hook.url, ENV_MAINTENANCE_RANDOM_DELAY: '0', ...facts }) });
  const result = cli(['deploy']);
  assert.equal(result.status, 0, `${what}: ${result.stderr}${result.stdout}`);
  assertMachineIsItsGeneration(box!, 'one', what);
}

/** What a unit's last run logged (its invocation's lines only). */
const lastRun = (unit: string) => on(`journalctl -q -o cat _SYSTEMD_INVOCATION_ID=$(systemctl show -p InvocationID --value ${unit})`).stdout;

/**
 * A local repository the machine's apt reads instead of its mirror: hc-security 2 from an origin like Debian's
 * security archive and hc-point 2 from one like its point releases, over version 1 of each, installed. Version 2
 * ships a setuid file (dpkg sets the bit), and its script gives a directory to another user and says a reboot is
 * required, as a kernel's does: what the shared sandbox of homecloud's services would refuse.
 */
const localRepository = String.raw`set -euo pipefail
work=/srv/hc-test/src
rm -rf /srv/hc-test && mkdir -p "$work"
make_deb() {
  local dir=$work/$1-$2
  mkdir -p "$dir/DEBIAN" "$dir/usr/lib/$1"
  printf 'Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: homecloud tests <tests@example.test>\nDescription: upgraded by the maintenance test\n' "$1" "$2" > "$dir/DEBIAN/control"
  install -m 4755 /bin/true "$dir/usr/lib/$1/setuid-helper"
  printf '#!/bin/sh\nset -e\n%s\n' "$3" > "$dir/DEBIAN/postinst"
  chmod 755 "$dir/DEBIAN/postinst"
  dpkg-deb --root-owner-group --build "$dir" "$work/$1_$2_all.deb" > /dev/null
}
make_repo() {
  local dir=/srv/hc-test/$1 origin=$2 label=$3 codename=$4 deb=$5
  mkdir -p "$dir"
  cp "$deb" "$dir/"
  { dpkg-deb --field "$deb"; printf 'Filename: ./%s\nSize: %s\nSHA256: %s\n\n' "$(basename "$deb")" "$(stat -c %s "$deb")" "$(sha256sum < "$deb" | cut -d' ' -f1)"; } > "$dir/Packages"
  printf 'Origin: %s\nLabel: %s\nSuite: %s\nCodename: %s\nDate: %s\nArchitectures: all\nSHA256:\n %s %s Packages\n' \
    "$origin" "$label" "$codename" "$codename" "$(date -Ru)" "$(sha256sum < "$dir/Packages" | cut -d' ' -f1)" "$(stat -c %s "$dir/Packages")" > "$dir/Release"
}
for name in hc-security hc-point; do
  make_deb "$name" 1 true
  make_deb "$name" 2 "mkdir -p /var/lib/$name && chown nobody /var/lib/$name
echo '*** System restart required ***' > /run/reboot-required
echo $name >> /run/reboot-required.pkgs"
done
dpkg -i "$work/hc-security_1_all.deb" "$work/hc-point_1_all.deb" > /dev/null
make_repo security Debian Debian-Security bookworm-security "$work/hc-security_2_all.deb"
make_repo point Debian Debian bookworm "$work/hc-point_2_all.deb"
mv /etc/apt/sources.list /etc/apt/sources.list.hc-test
printf 'deb [trusted=yes] file:/srv/hc-test/security ./\ndeb [trusted=yes] file:/srv/hc-test/point ./\n' > /etc/apt/sources.list.d/hc-test.list
`;

test('a machine with the layer: its timers and watch are active, its units verify with nothing to say, a shortened schedule runs', { skip }, async () => {
  await box!.up(['one']);
  await hook.listen(box!.paths.hostAddress);
  deploy('the first deploy', { ENV_MAINTENANCE_FSTRIM_ON: '*:*:0/5' });
  assert.equal(on(`systemctl is-active ${timers.join(' ')} homecloud-reboot-required.path`).stdout, 'active\n'.repeat(5).trim());
  const layerUnits = [
    ...timers,
    ...timers.map((timer) => timer.replace(/\.timer$/, '.service')),
    'homecloud-reboot-required.path',
    'homecloud-reboot-required.service',
  ];
  const verify = on(`systemd-analyze verify --man=no ${layerUnits.map((unit) => `${units}/${unit}`).join(' ')}`);
  assert.deepEqual([verify.status, verify.stdout, verify.stderr], [0, '', '']);
  assert.equal(on('systemctl --failed --plain --no-legend').stdout, '');
  // fstrim every 5 s (ENV_MAINTENANCE_FSTRIM_ON), and nothing in its way: the random delay is 0.
  await eventually('the fstrim timer has run fstrim', () => /\/: .* trimmed on \/dev\//.test(lastRun('homecloud-fstrim.service')), 30);
  // systemd-timesyncd is installed and enabled; in a container it does not run (its host keeps the time).
  assert.equal(on('systemctl is-enabled systemd-timesyncd; systemctl show -p ConditionResult --value systemd-timesyncd').stdout, 'enabled\nno');
  assert.match(on('systemd-analyze cat-config systemd/journald.conf').stdout, /^MaxRetentionSec=1month$/m);
  deploy('back to the default schedule');
});

test('fstrim, btrfs scrub and btrfs balance work under their sandboxes: the root file system trimmed, scrubbed and balanced', { skip }, () => {
  const started = on('systemctl start homecloud-fstrim.service homecloud-btrfs-scrub.service homecloud-btrfs-balance.service');
  assert.equal(started.status, 0, started.stderr);
  assert.match(lastRun('homecloud-fstrim.service'), /^\/: .* trimmed on \/dev\/loop\d+$/m);
  const scrub = lastRun('homecloud-btrfs-scrub.service');
  assert.equal(scrub.match(/^Error summary: +no errors found$/gm)?.length, 1, scrub);
  const balance = lastRun('homecloud-btrfs-balance.service');
  assert.equal(balance.match(/^Done, had to relocate \d+ out of \d+ chunks$/gm)?.length, 1, balance);
  for (const unit of ['homecloud-fstrim.service', 'homecloud-btrfs-scrub.service', 'homecloud-btrfs-balance.service'])
    assert.equal(on(`systemctl show -p Result --value ${unit}`).stdout, 'success', unit);
  assert.equal(on('/usr/local/libexec/homecloud/btrfs-maintenance list').stdout, 'rw /');
});

test(
  "unattended upgrades under their sandbox: Debian's security update installs, a point release's waits; the reboot it requires is one alert naming it, gone after the reboot",
  { skip },
  async () => {
    const prepared = on(localRepository);
    assert.equal(prepared.status, 0, prepared.stderr);
    const upgraded = on('systemctl start homecloud-upgrades.service');
    assert.equal(upgraded.status, 0, `${upgraded.stderr}\n${lastRun('homecloud-upgrades.service')}`);
    assert.equal(on('dpkg-query -W hc-security hc-point').stdout, 'hc-point\t1\nhc-security\t2');
    assert.equal(on('stat -c "%A %U" /usr/lib/hc-security/setuid-helper /var/lib/hc-security').stdout, '-rwsr-xr-x root\ndrwxr-xr-x nobody');
    const log = lastRun('homecloud-upgrades.service');
    assert.match(log, /^Packages that will be upgraded: hc-security$/m);
    assert.match(log, /^apt-cache-limit: apt's cache holds \S+ \(at most 500M\)$/m);

    const alert = await hook.waitFor((sent) => sent.unit === 'homecloud-reboot-required.service');
    assert.ok(alert, `an alert came: ${on('systemctl status homecloud-reboot-required.path homecloud-reboot-required.service --no-pager').stdout}`);
    assert.equal(alert.state, 'notice');
    assert.match(alert.text, /^one: a reboot is required since \d{4}-\d\d-\d\d \d\d:\d\d UTC, by: hc-security/);
    await sleep(settle);
    assert.deepEqual(
      hook.alerts.filter((sent) => sent.unit.startsWith('homecloud-')).map((sent) => `${sent.state} ${sent.unit}`),
      ['notice homecloud-reboot-required.service'],
      'one alert, and none about the path unit',
    );
    assert.equal(on('systemctl is-active homecloud-reboot-required.path homecloud-reboot-required.service').stdout, 'active\nactive');
    // A notice, not a failure: deploys go on meanwhile.
    assert.equal(on('systemctl --failed --plain --no-legend').stdout, '');
    deploy('while a reboot is required', { ENV_MAINTENANCE_FSTRIM_ON: '*:*:0/5' });

    await box!.reboot('one');
    assert.equal(on('test -e /run/reboot-required || echo gone').stdout, 'gone');
    assert.equal(on('systemctl --failed --plain --no-legend').stdout, '');
    assert.equal(on(`systemctl is-active ${timers.join(' ')} homecloud-reboot-required.path`).stdout, 'active\n'.repeat(5).trim(), 'all up again at boot');
    assert.equal(on('systemctl is-active homecloud-reboot-required.service').stdout, 'inactive');
  },
);

test('facts widen the origins and set a reboot time: the point release update installs, and the reboot it requires is scheduled', { skip }, async () => {
  deploy('origins widened, reboots at 04:00', { ENV_MAINTENANCE_UPGRADE_ORIGINS: 'stable', ENV_MAINTENANCE_REBOOT_AT: '04:00' });
  const upgraded = on('systemctl start homecloud-upgrades.service');
  assert.equal(upgraded.status, 0, `${upgraded.stderr}\n${lastRun('homecloud-upgrades.service')}`);
  assert.equal(on('dpkg-query -W hc-point').stdout, 'hc-point\t2');
  assert.match(lastRun('homecloud-upgrades.service'), /^Found \/var\/run\/reboot-required, rebooting$/m);
  // unattended-upgrade asked logind for the reboot at 04:00 (shutdown -r 04:00).
  const scheduled = on('busctl get-property org.freedesktop.login1 /org/freedesktop/login1 org.freedesktop.login1.Manager ScheduledShutdown').stdout;
  const [, kind, usec] = /^\(st\) "(\w+)" (\d+)$/.exec(scheduled) ?? [];
  assert.equal(kind, 'reboot', scheduled);
  assert.equal(new Date(Number(usec) / 1000).toISOString().slice(11, 16), '04:00');
  on('shutdown -c');
  // This boot's required reboot: one alert more.
  assert.ok(await hook.waitFor((sent) => sent.unit === 'homecloud-reboot-required.service' && /by: hc-point/.test(sent.text)));
  await sleep(settle);
  assert.deepEqual(hook.about('homecloud-reboot-required.service'), ['notice one', 'notice one']);
});

test('a mirror the machine cannot reach fails the upgrades: one alert, with what apt said; the timer goes on', { skip }, async () => {
  on('rm /etc/apt/sources.list.d/hc-test.list && mv /etc/apt/sources.list.hc-test /etc/apt/sources.list');
  const failed = on('systemctl start homecloud-upgrades.service');
  assert.notEqual(failed.status, 0);
  const alert = await hook.waitFor((sent) => sent.unit === 'homecloud-upgrades.service');
  assert.ok(alert, 'an alert came');
  assert.equal(alert.state, 'failed');
  assert.match(alert.journal, /E: Failed to fetch http:\/\/\S+\/InRelease/);
  await sleep(settle);
  assert.deepEqual(hook.about('homecloud-upgrades.service'), ['failed one']);
  assert.equal(on('systemctl is-active homecloud-upgrades.timer').stdout, 'active');
});
