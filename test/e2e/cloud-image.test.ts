// The sandbox's cloud image: what the cloud's own layers need inside a machine (containers cloned into btrfs
// subvolumes and booted with systemd-nspawn), while the engine's tests keep the fast base image.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runCli } from '../helpers/repo.ts';
import { testSandbox } from '../helpers/sandbox.ts';

const { box, skip } = testSandbox('cloud-image', 'cloud');

test('a machine of the cloud image has nspawn, btrfs and debootstrap, and clones its own root as a subvolume', { skip }, async () => {
  await box!.up(['c1']);
  const on = (command: string) => box!.ssh('c1', command);
  const tools = on('systemd-nspawn --version | head -1; btrfs --version; command -v debootstrap; systemctl is-system-running --wait');
  assert.equal(tools.status, 0, tools.stderr);
  assert.match(tools.stdout, /^systemd \d+/m);
  assert.match(tools.stdout, /^btrfs-progs v/m);
  assert.match(tools.stdout, /\/debootstrap$/m);
  assert.match(tools.stdout, /^running$/m);
  const clone = on(
    'mkdir -p /var/lib/machines && btrfs -q subvolume snapshot / /var/lib/machines/probe && btrfs subvolume show /var/lib/machines/probe >/dev/null && test -e /var/lib/machines/probe/etc/os-release && echo cloned',
  );
  assert.equal(clone.stdout.trim(), 'cloned', clone.stderr);
});

test('an image profile that does not exist is named, with the ones that do', { skip }, () => {
  const result = runCli(['sandbox', 'up', '--image', 'nope', 'x'], { env: { HOMECLOUD_SANDBOX: box!.paths.home } });
  assert.equal(result.status, 2);
  assert.match(result.stderr, /there is no image "nope"\n  choose one of: base, cloud/);
});
