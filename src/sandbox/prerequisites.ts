import { HomecloudError } from '../load/errors.ts';
import { run } from '../util/run.ts';

/** Host tools the sandbox needs, and the Debian package that has each. */
const tools: [command: string, pkg: string][] = [
  ['systemd-nspawn', 'systemd-container'],
  ['debootstrap', 'debootstrap'],
  ['mkfs.btrfs', 'btrfs-progs'],
  ['ip', 'iproute2'],
  ['ssh', 'openssh-client'],
  ['ssh-keygen', 'openssh-client'],
];

/** Root and the host tools, or one error that says how to get them. */
export function checkPrerequisites(): void {
  if (process.getuid?.() !== 0) {
    throw new HomecloudError(
      'sandbox machines need root (they use systemd-nspawn, loop devices and a bridge)',
      undefined,
      'run it as root, e.g. sudo homecloud sandbox up ...',
    );
  }
  const missing = [
    ...new Set(tools.filter(([command]) => run('/bin/sh', ['-c', `command -v ${command}`], { check: false }).status !== 0).map(([, pkg]) => pkg)),
  ];
  if (missing.length) {
    throw new HomecloudError(`missing host tools for sandbox machines: ${missing.join(', ')}`, undefined, `install them: apt-get install ${missing.join(' ')}`);
  }
}
