import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InventoryEntry } from '../load/inventory.ts';
import { lazyChildProcess } from '../util/lazy.ts';

/** How to reach one machine: its inventory entry. */
export interface Target {
  machine: string;
  entry: InventoryEntry;
}

export interface RemoteResult {
  status: number;
  stdout: string;
  stderr: string;
}

/**
 * Where ssh keeps its control sockets: one master connection per machine,
 * shared by every command and by rsync. Short, because a unix socket path
 * has a length limit.
 */
export function controlDir(): string {
  const dir = join(process.env.XDG_RUNTIME_DIR ?? tmpdir(), `homecloud-ssh-${process.getuid?.() ?? 0}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** OpenSSH's arguments for a target, up to and including user@host; the user's own ssh config, agent and known_hosts apply. */
export function sshArguments(target: Target): string[] {
  return [
    '-o', 'ControlMaster=auto',
    '-o', `ControlPath=${join(controlDir(), '%C')}`,
    '-o', 'ControlPersist=60',
    '-o', 'BatchMode=yes',
    '-o', 'ConnectTimeout=10',
    '-o', 'ServerAliveInterval=5',
    '-o', 'ServerAliveCountMax=3',
    ...target.entry.options,
    `${target.entry.user}@${target.entry.host}`,
  ];
}

export interface RunOptions {
  /** The script's standard input. */
  input?: string;
  /** Hears each line of standard output as it arrives. */
  onLine?: (line: string) => void;
  /** Ends the local ssh (what runs on the target decides what that means for it). */
  signal?: AbortSignal;
}

/** Run a bash script on a target, over the shared connection. */
export function runScript(target: Target, script: string, options: RunOptions = {}): Promise<RemoteResult> {
  return new Promise((resolve) => {
    const child = lazyChildProcess().spawn('ssh', [...sshArguments(target), `bash -c ${shellQuote(script)}`], { stdio: ['pipe', 'pipe', 'pipe'], signal: options.signal });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let partial = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out.push(chunk);
      if (!options.onLine) return;
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop()!;
      for (const line of lines) options.onLine(line);
    });
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', (error) => resolve({ status: 255, stdout: '', stderr: error.name === 'AbortError' ? 'interrupted' : error.message }));
    child.on('close', (code) => resolve({ status: code ?? 255, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}

/** The remote shell rsync should use (its -e): the same ssh, options and master connection as every other command. */
export function rsyncShell(target: Target): string {
  return ['ssh', ...sshArguments(target).slice(0, -1)].map((arg) => (/\s/.test(arg) ? `'${arg}'` : arg)).join(' ');
}

/** One word for a POSIX shell. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** What an ssh failure means, in words a user can act on. */
export function describeSshFailure(target: Target, stderr: string): string {
  const { host } = target.entry;
  if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/i.test(stderr)) {
    return `the host key of ${host} is not the one in known_hosts: refused. If the machine was reinstalled, remove its old key with: ssh-keygen -R ${host}`;
  }
  if (/Permission denied/i.test(stderr)) return `${host} refused the login (${stderr.trim().split('\n').pop()}): check the key and user in inventory.json`;
  if (/Connection refused|timed out|No route to host|Could not resolve/i.test(stderr)) return `cannot reach ${host}: ${stderr.trim().split('\n').pop()}`;
  return stderr.trim().split('\n').slice(-3).join('; ') || 'ssh failed';
}

/** End the shared master connection of a target, if there is one (the next command connects, and checks the host key, anew). */
export function closeConnection(target: Target): void {
  lazyChildProcess().spawnSync('ssh', ['-O', 'exit', ...sshArguments(target)], { stdio: 'ignore' });
}
