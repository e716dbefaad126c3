import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { entryProblem, type InventoryEntry } from '../load/inventory.ts';
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

/** OpenSSH's options for a target (the user's own ssh config, agent and known_hosts apply). */
function sshOptions(target: Target): string[] {
  return [
    '-o', 'ControlMaster=auto',
    '-o', `ControlPath=${join(controlDir(), '%C')}`,
    '-o', 'ControlPersist=60',
    '-o', 'BatchMode=yes',
    '-o', 'ConnectTimeout=10',
    '-o', 'ServerAliveInterval=5',
    '-o', 'ServerAliveCountMax=3',
    ...target.entry.options,
  ];
}

/**
 * Where rsync and ssh reach a target: user@host. rsync hands the host to ssh
 * on its own (after `-l user`, with no `--`), so a host ssh would read as an
 * option never gets this far (the commands check reachProblem first).
 */
export function destination(target: Target): string {
  const problem = entryProblem(target.machine, target.entry);
  if (problem) throw problem;
  return `${target.entry.user}@${target.entry.host}`;
}

/** OpenSSH's arguments for a target, up to and including user@host, which follows `--` so that it is never read as an option. */
export function sshArguments(target: Target): string[] {
  return [...sshOptions(target), '--', destination(target)];
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
    const lines = lineSplitter((line) => options.onLine?.(line));
    child.stdout.on('data', (chunk: Buffer) => {
      out.push(chunk);
      if (options.onLine) lines.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', (error) => resolve({ status: 255, stdout: '', stderr: error.name === 'AbortError' ? 'interrupted' : error.message }));
    child.on('close', (code) => resolve({ status: code ?? 255, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}

/**
 * A bash script on a target that keeps running while we talk to it: its
 * output is read line by line, and its standard input stays open until
 * `end` (the script then sees the end of its input).
 */
export interface RemoteSession {
  /** The next line of standard output, or undefined once it has ended. */
  nextLine(): Promise<string | undefined>;
  /** Lines from now on go to this listener (and no longer to nextLine); lines already read but not taken go first. */
  follow(onLine: (line: string) => void): void;
  write(data: string): void;
  end(): void;
  /** The exit status, standard output after the last whole line, and standard error. */
  readonly done: Promise<RemoteResult>;
}

export function openSession(target: Target, script: string, options: { signal?: AbortSignal } = {}): RemoteSession {
  const child = lazyChildProcess().spawn('ssh', [...sshArguments(target), `bash -c ${shellQuote(script)}`], { stdio: ['pipe', 'pipe', 'pipe'], signal: options.signal });
  const lines: string[] = [];
  const waiting: ((line: string | undefined) => void)[] = [];
  const err: Buffer[] = [];
  let ended = false;
  let listener: ((line: string) => void) | undefined;
  const deliver = (line: string) => {
    if (listener) listener(line);
    else if (waiting.length) waiting.shift()!(line);
    else lines.push(line);
  };
  const splitter = lineSplitter(deliver);
  child.stdout.on('data', (chunk: Buffer) => splitter.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
  child.stdin.on('error', () => {});
  const done = new Promise<RemoteResult>((resolve) => {
    let settled = false;
    const finish = (status: number, stderr: string) => {
      if (settled) return;
      settled = true;
      ended = true;
      for (const wake of waiting.splice(0)) wake(undefined);
      resolve({ status, stdout: splitter.rest(), stderr });
    };
    child.on('error', (error) => finish(255, error.name === 'AbortError' ? 'interrupted' : error.message));
    child.on('close', (code) => finish(code ?? 255, Buffer.concat(err).toString('utf8')));
  });
  return {
    nextLine: () => (lines.length ? Promise.resolve(lines.shift()) : ended ? Promise.resolve(undefined) : new Promise((wake) => waiting.push(wake))),
    follow: (onLine) => {
      listener = onLine;
      for (const line of lines.splice(0)) onLine(line);
    },
    write: (data) => {
      if (!child.stdin.destroyed && !child.stdin.writableEnded) child.stdin.write(data);
    },
    end: () => {
      if (!child.stdin.writableEnded) child.stdin.end();
    },
    done,
  };
}

/** Whole lines from chunks of output; a line of megabytes (a base64 manifest) costs no more than its bytes. */
function lineSplitter(onLine: (line: string) => void) {
  let pending: Buffer[] = [];
  return {
    push(chunk: Buffer) {
      let start = 0;
      for (let newline = chunk.indexOf(10); newline >= 0; newline = chunk.indexOf(10, start)) {
        pending.push(chunk.subarray(start, newline));
        onLine(Buffer.concat(pending).toString('utf8'));
        pending = [];
        start = newline + 1;
      }
      if (start < chunk.length) pending.push(chunk.subarray(start));
    },
    rest: () => Buffer.concat(pending).toString('utf8'),
  };
}

/**
 * The remote shell rsync should use (its -e): the same ssh, options and master
 * connection as every other command. rsync adds `-l user` and the host itself,
 * so no `--` here: rsync's own command line puts one before its paths.
 */
export function rsyncShell(target: Target): string {
  return ['ssh', ...sshOptions(target)].map((arg) => (/\s/.test(arg) ? `'${arg}'` : arg)).join(' ');
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
