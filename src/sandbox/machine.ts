import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { HomecloudError } from '../load/errors.ts';
import { lazyChildProcess } from '../util/lazy.ts';
import { alive, run, sleep } from '../util/run.ts';
import { enterCgroups, hostRunsSystemd } from './cgroups.ts';

export interface MachineSetup {
  name: string;
  address: string;
  /** The sandbox's public key, for root's authorized_keys. */
  publicKey: string;
}

/** Give a fresh clone its identity: hostname, address, machine-id, SSH host key and authorized key. Returns the host key line. */
export function prepareMachine(root: string, setup: MachineSetup): string {
  writeFileSync(join(root, 'etc/hostname'), `${setup.name}\n`);
  writeFileSync(join(root, 'etc/hosts'), `127.0.0.1 localhost\n127.0.1.1 ${setup.name}\n`);
  writeFileSync(join(root, 'etc/machine-id'), `${randomBytes(16).toString('hex')}\n`);
  mkdirSync(join(root, 'etc/systemd/network'), { recursive: true });
  // A private network with no gateway: sandbox machines have no route out.
  writeFileSync(
    join(root, 'etc/systemd/network/10-host0.network'),
    `[Match]\nName=host0\n\n[Network]\nAddress=${setup.address}/24\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n`,
  );
  const ssh = join(root, 'root/.ssh');
  mkdirSync(ssh, { recursive: true, mode: 0o700 });
  chmodSync(ssh, 0o700);
  writeFileSync(join(ssh, 'authorized_keys'), `${setup.publicKey.trim()}\n`, { mode: 0o600 });
  const hostKey = join(root, 'etc/ssh/ssh_host_ed25519_key');
  run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `root@${setup.name}`, '-f', hostKey]);
  const [type, key] = readFileSync(`${hostKey}.pub`, 'utf8').trim().split(/\s+/);
  return `${setup.address} ${type} ${key}`;
}

/** Set in every sandbox machine's init: finds a machine's processes even after its nspawn was killed. */
const markerVariable = 'HOMECLOUD_SANDBOX_MACHINE';

/**
 * Boot a machine in systemd-nspawn, detached; returns the nspawn process's
 * PID. On a systemd host nspawn registers the machine and gets its own scope;
 * elsewhere (--register=no --keep-unit) it is started inside `cgroups`.
 */
export function boot(root: string, name: string, bridge: string, logFile: string, cgroups: string[]): number {
  mkdirSync(join(logFile, '..'), { recursive: true });
  const log = openSync(logFile, 'w');
  // The machine name nspawn knows (and names the host's veth after) carries the sandbox's bridge, so that two sandboxes can both have a "nas".
  const nspawn = [
    '--quiet',
    `--directory=${root}`,
    `--machine=${bridge}-${name}`,
    `--hostname=${name}`,
    '--boot',
    `--network-bridge=${bridge}`,
    '--console=passive',
    `--setenv=${markerVariable}=${root}`,
  ];
  const [program, args] = hostRunsSystemd()
    ? ['systemd-nspawn', nspawn]
    : ['sh', ['-c', `${enterCgroups(cgroups)} && exec systemd-nspawn --register=no --keep-unit "$@"`, 'sh', ...nspawn]];
  try {
    const child = lazyChildProcess().spawn(program, args, { detached: true, stdio: ['ignore', log, log] });
    child.unref();
    if (!child.pid) throw new HomecloudError(`systemd-nspawn did not start for ${name}`, { file: logFile });
    return child.pid;
  } finally {
    closeSync(log);
  }
}

/** Wait until the machine's sshd accepts TCP connections. */
export async function waitForSsh(address: string, pid: number, logFile: string, timeout = 60_000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    if (!alive(pid)) throw new HomecloudError('the machine stopped while booting', { file: logFile }, 'its console output is in that file');
    if (await connects(address, 22)) return;
    await sleep(25);
  }
  throw new HomecloudError(`the machine at ${address} did not open SSH within ${timeout / 1000} s`, { file: logFile });
}

function connects(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port, timeout: 500 });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

/** Stop a machine: its nspawn powers it off on SIGTERM; SIGKILL if that takes too long. */
export async function stop(pid: number, timeout = 15_000): Promise<void> {
  if (!alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + timeout;
  while (alive(pid) && Date.now() < deadline) await sleep(50);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
  while (alive(pid)) await sleep(20);
}

/** nspawn processes running a machine directory (after a crash the recorded PID may be stale). */
export function nspawnProcesses(root: string): number[] {
  return nspawnProcessesOf([root]).get(root)!;
}

/** The same for several machine directories, in one look at every process. */
export function nspawnProcessesOf(roots: string[]): Map<string, number[]> {
  const found = new Map(roots.map((root) => [`--directory=${root}`, [] as number[]]));
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const exe = readlinkSync(`/proc/${entry}/exe`);
      if (!exe.endsWith('/systemd-nspawn')) continue;
      for (const arg of readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0')) found.get(arg)?.push(Number(entry));
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return new Map(roots.map((root) => [root, found.get(`--directory=${root}`)!]));
}

/**
 * Processes of a machine whose nspawn is gone: killing nspawn with SIGKILL
 * leaves the machine's init running, reparented to the host's PID 1.
 */
export function machineProcesses(root: string): number[] {
  return machineProcessesOf([root]).get(root)!;
}

/** The same for several machine directories, in one look at every process. */
export function machineProcessesOf(roots: string[]): Map<string, number[]> {
  const prefix = `${markerVariable}=`;
  const found = new Map(roots.map((root) => [root, [] as number[]]));
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environment = readFileSync(`/proc/${entry}/environ`, 'latin1');
      if (!environment.includes(prefix)) continue;
      for (const variable of environment.split('\0')) {
        if (variable.startsWith(prefix)) found.get(variable.slice(prefix.length))?.push(Number(entry));
      }
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/** SIGKILL processes and wait until they are gone. */
export async function killAll(pids: number[]): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  while (pids.some((pid) => alive(pid))) await sleep(20);
}
