import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { shortHash } from '../util/short-hash.ts';
import { run } from '../util/run.ts';

/**
 * The base image: Debian with systemd, sshd, rsync and what the standard
 * layers install, made once by debootstrap. Machines have no route out, so
 * every package is in the image; a changed list makes a new image.
 */
export const imagePackages = [
  'systemd',
  'systemd-sysv',
  'dbus',
  'openssh-server',
  'rsync',
  'make',
  'm4',
  'jq',
  'iproute2',
  'sudo',
  'procps',
  'less',
  'ca-certificates',
  'curl',
  'nginx-light',
  'libnginx-mod-stream',
  'nftables',
  'systemd-journal-remote',
  // Ansible's modules run on the target in Python: the benchmark against it uses the same image.
  'python3',
];
export const imageSuite = 'bookworm';

/**
 * Image profiles: `base`, the fast image every test of the engine and the base layers boots, and `cloud`, which
 * adds what the cloud's own layers need inside a machine (containers cloned into btrfs subvolumes and booted
 * with systemd-nspawn, their images made by debootstrap; the overlay's WireGuard, in the kernel or wireguard-go
 * where it has none; the dns layer's dnsmasq and systemd-resolved; the postgres layer's PostgreSQL 15). systemd-resolved makes /etc/resolv.conf a
 * link to its stub's file and is enabled (ensureImage makes sure); nspawn leaves the file as it is, since a
 * machine has a private network, and resolved runs there with no upstream server.
 */
export const imageProfiles = {
  base: [],
  cloud: [
    'systemd-container',
    'btrfs-progs',
    'debootstrap',
    'libnss-mymachines',
    'wireguard-tools',
    'wireguard-go',
    'dnsmasq-base',
    'systemd-resolved',
    'postgresql-15',
    'pgbackrest',
    'pgbouncer',
    'unattended-upgrades',
    'systemd-timesyncd',
  ],
} as const satisfies Record<string, readonly string[]>;
export type ImageProfile = keyof typeof imageProfiles;

export function isImageProfile(name: string): name is ImageProfile {
  return Object.hasOwn(imageProfiles, name);
}

/** A profile's packages: the base image's and its own. */
function packagesOf(profile: ImageProfile): string[] {
  return [...imagePackages, ...imageProfiles[profile]];
}

/** Units a throwaway container does not need (the network generator reads a kernel command line it has not got). */
const masked = [
  'apt-daily.timer',
  'apt-daily-upgrade.timer',
  'e2scrub_all.timer',
  'fstrim.timer',
  'man-db.timer',
  'dpkg-db-backup.timer',
  'systemd-network-generator.service',
  'nginx.service',
  // The cloud image's postgresql-15 made its own cluster, 15/main: not run (the postgres layer runs its own).
  'postgresql.service',
  'pgbouncer.service',
];

/** Changes whenever the image would be made differently: suite, mirror, packages, masked units. */
export function imageKey(profile: ImageProfile = 'base'): string {
  const name = profile === 'base' ? imageSuite : `${imageSuite}-${profile}`;
  return `${name}-${shortHash(['recipe 2', imageSuite, mirror(), ...packagesOf(profile), ...masked].join(' '))}`;
}

/** The mirror the host's apt uses (machines are made from the same archive). */
function mirror(): string {
  const sources = run('sh', ['-c', 'cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null'], { check: false }).stdout;
  return /URIs:\s*(\S+)/.exec(sources)?.[1] ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/m.exec(sources)?.[1] ?? 'http://deb.debian.org/debian';
}

/** The cached image's root directory, made when missing. `log` hears what takes long. */
export function ensureImage(cache: string, log: (line: string) => void, profile: ImageProfile = 'base'): string {
  const root = join(cache, imageKey(profile));
  if (existsSync(join(root, 'etc/os-release'))) return root;
  mkdirSync(cache, { recursive: true });
  const building = `${root}.building-${process.pid}`;
  rmSync(building, { recursive: true, force: true });
  log(`making the ${profile} image ${imageKey(profile)} with debootstrap (once; a minute or two)`);
  run('debootstrap', ['--variant=minbase', `--include=${packagesOf(profile).join(',')}`, imageSuite, building, mirror()]);
  // Every machine gets its own identity and host key at clone time.
  rmSync(join(building, 'etc/machine-id'), { force: true });
  writeFileSync(join(building, 'etc/machine-id'), '');
  for (const key of ['rsa', 'ecdsa', 'ed25519']) {
    rmSync(join(building, `etc/ssh/ssh_host_${key}_key`), { force: true });
    rmSync(join(building, `etc/ssh/ssh_host_${key}_key.pub`), { force: true });
  }
  writeFileSync(
    join(building, 'etc/ssh/sshd_config.d/10-homecloud-sandbox.conf'),
    'HostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\nUseDNS no\n',
  );
  for (const unit of masked) {
    const link = join(building, 'etc/systemd/system', unit);
    rmSync(link, { force: true });
    run('ln', ['-s', '/dev/null', link]);
  }
  // systemd-resolved's package enables it on install; said here too, as networkd is. Its postinst kept the host's
  // resolv.conf (debootstrap copied it in) beside the link it made: not the machines' business.
  const enabled = ['systemd-networkd.service', ...(packagesOf(profile).includes('systemd-resolved') ? ['systemd-resolved.service'] : [])];
  run('chroot', [building, 'systemctl', 'enable', ...enabled]);
  rmSync(join(building, 'etc/.resolv.conf.systemd-resolved.bak'), { force: true });
  writeFileSync(join(building, 'etc/apt/apt.conf.d/99-homecloud-sandbox'), 'APT::Install-Recommends "false";\n');
  try {
    renameSync(building, root);
  } catch (error) {
    // Another process (a parallel test file) made the same image meanwhile: use that one.
    if (!existsSync(join(root, 'etc/os-release'))) throw error;
    rmSync(building, { recursive: true, force: true });
  }
  return root;
}
