import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { isHomecloudError } from '../load/errors.ts';
import { entryProblem } from '../load/inventory.ts';
import { shortHash } from '../util/short-hash.ts';
import { openProcess, runProcess, runProcessSync, type ProcessResult, type ProcessSession } from '../util/process.ts';
import { rsyncShell, shellQuote } from '../util/quote.ts';
import { fetchArguments, treeArguments } from './rsync.ts';
import { lastLines, type ScriptOptions, type SendOptions, type Target, type Transport } from './transport.ts';

export { shellQuote } from '../util/quote.ts';
export type { Target } from './transport.ts';
export type RemoteResult = ProcessResult;
export type RemoteSession = ProcessSession;

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
    '-o',
    'ControlMaster=auto',
    // Behind a hop, the same address may be another machine (containers on two hosts): the socket names the route too.
    '-o',
    `ControlPath=${join(controlDir(), target.via ? `%C-${shortHash(JSON.stringify(route(target.via)))}` : '%C')}`,
    '-o',
    'ControlPersist=60',
    '-o',
    'BatchMode=yes',
    '-o',
    'ConnectTimeout=10',
    '-o',
    'ServerAliveInterval=5',
    '-o',
    'ServerAliveCountMax=3',
    ...hop(target),
    ...target.entry.options,
  ];
}

/**
 * Through `via`: ssh's ProxyCommand runs a second ssh, with the hop's own
 * options and shared connection, that carries the session to the machine
 * (-W). Not -J: options on the command line never reach a ProxyJump hop
 * (ssh(1)), so BatchMode, the control socket and a sandbox key would not apply.
 */
function hop(target: Target): string[] {
  if (!target.via) return [];
  // ssh expands %-tokens in ProxyCommand: the hop's own (its ControlPath's %C) are doubled to reach it. An IPv6 address goes in brackets.
  const forward = target.entry.host.includes(':') ? `'[%h]:%p'` : '%h:%p';
  const words = ['ssh', ...sshOptions(target.via), '-W', forward, '--', destination(target.via)].map((word) =>
    word === forward ? word : shellQuote(word).replace(/%/g, '%%'),
  );
  return ['-o', `ProxyCommand=${words.join(' ')}`];
}

function route(target: Target): unknown[] {
  return [target.entry.user, target.entry.host, target.entry.options, ...(target.via ? route(target.via) : [])];
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

/** A path on a target as rsync takes it: user@host:path, an IPv6 address in brackets (rsync would split it at its first colon). */
function remotePath(target: Target, path: string): string {
  // destination checks the entry (a host read as an option is refused).
  const at = destination(target);
  const { user, host } = target.entry;
  return host.includes(':') ? `${user}@[${host}]:${path}` : `${at}:${path}`;
}

/**
 * OpenSSH's arguments for a target, up to and including user@host, which
 * follows `--` so that it is never read as an option. `shared: false` leaves
 * out the master connection and homecloud's defaults: the target's own options only.
 */
export function sshArguments(target: Target, { shared = true } = {}): string[] {
  return [...(shared ? sshOptions(target) : [...hop(target), ...target.entry.options]), '--', destination(target)];
}

/** OpenSSH, with one master connection per machine that every script and transfer shares. */
export class SshTransport implements Transport {
  constructor(readonly target: Target) {}

  async run(script: string, options: ScriptOptions = {}): Promise<ProcessResult> {
    const args = this.scriptArguments(script);
    try {
      return this.reached(
        await runProcess('ssh', args, { input: options.input, onLine: options.onLine, signal: options.signal, check: false }),
        options.signal,
      );
    } catch (error) {
      return this.unstarted(args, error);
    }
  }

  open(script: string, options: { signal?: AbortSignal } = {}): ProcessSession {
    const args = this.scriptArguments(script);
    const session = openProcess('ssh', args, { signal: options.signal, check: false });
    const done = session.done.then(
      (result) => this.reached(result, options.signal),
      (error: unknown) => this.unstarted(args, error),
    );
    return { ...session, done };
  }

  sendTree(local: string, remote: string, options: SendOptions = {}): Promise<ProcessResult> {
    // rsync runs this on the machine in place of rsync: the directory's parent is made first.
    const make = `--rsync-path=mkdir -p ${shellQuote(posix.dirname(remote))} && rsync`;
    return runProcess('rsync', ['-e', this.shell(), make, ...treeArguments(local, remotePath(this.target, remote), options)], {
      signal: options.signal,
      check: false,
    });
  }

  fetchTree(remote: string, local: string): Promise<ProcessResult> {
    return runProcess('rsync', ['-e', this.shell(), ...fetchArguments(remotePath(this.target, remote), local)], { check: false });
  }

  describeFailure(stderr: string): string {
    const { host } = this.target.entry;
    if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/i.test(stderr)) {
      // A hosted machine's key is the one its host holds, read just before: that one is not the machine's.
      if (this.target.hostKey && this.target.via)
        return `the host key of ${host} is not the one its host ${this.target.via.machine} holds at ${this.target.hostKey.path}: refused. Is another machine at that address?`;
      return `the host key of ${host} is not the one in known_hosts: refused. If the machine was reinstalled, remove its old key with: ssh-keygen -R ${host}`;
    }
    if (/Permission denied/i.test(stderr)) return `${host} refused the login (${lastLines(stderr, 1)}): check the key and user in inventory.json`;
    if (/Connection refused|timed out|No route to host|Could not resolve/i.test(stderr)) return `cannot reach ${host}: ${lastLines(stderr, 1)}`;
    return lastLines(stderr) || 'ssh failed';
  }

  close(): void {
    try {
      runProcessSync('ssh', ['-O', 'exit', ...sshArguments(this.target)], { check: false });
    } catch {
      // No ssh to run: no connection to end either.
    }
  }

  private scriptArguments(script: string): string[] {
    return [...sshArguments(this.target), `bash -c ${shellQuote(script)}`];
  }

  /** The remote shell rsync should use (its -e): the same ssh, options and master connection. rsync adds `-l user` and the host itself. */
  private shell(): string {
    return rsyncShell(['ssh', ...sshOptions(this.target)]);
  }

  /** ssh killed (an interrupt) is, as any ssh failure, exit status 255. */
  private reached(result: ProcessResult, signal: AbortSignal | undefined): ProcessResult {
    if (!result.signal) return result;
    return { ...result, status: 255, stderr: signal?.aborted ? 'interrupted' : result.stderr };
  }

  private unstarted(args: string[], error: unknown): ProcessResult {
    if (!isHomecloudError(error)) throw error;
    return { command: ['ssh', ...args], status: 255, signal: null, stdout: '', stderr: error.message, milliseconds: 0 };
  }
}

/** How to reach a target: its own transport, or ssh. */
export function transportFor(target: Target): Transport {
  return target.transport ?? new SshTransport(target);
}

/** Run a bash script on a target, over the shared connection. */
export function runScript(target: Target, script: string, options: ScriptOptions = {}): Promise<ProcessResult> {
  return transportFor(target).run(script, options);
}

/** A bash script on a target that keeps running while we talk to it. */
export function openSession(target: Target, script: string, options: { signal?: AbortSignal } = {}): ProcessSession {
  return transportFor(target).open(script, options);
}

/** What a failure to reach a target means, in words a user can act on. */
export function describeSshFailure(target: Target, stderr: string): string {
  return transportFor(target).describeFailure(stderr);
}

/** End the shared master connection of a target, if there is one (the next command connects, and checks the host key, anew). */
export function closeConnection(target: Target): void {
  transportFor(target).close();
}
