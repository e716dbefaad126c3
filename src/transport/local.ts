import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { openProcess, runProcess, type ProcessResult, type ProcessSession } from '../util/process.ts';
import { fetchArguments, treeArguments } from './rsync.ts';
import { lastLines, type ScriptOptions, type SendOptions, type Transport } from './transport.ts';

/**
 * A machine that is a directory on this host, for tests: trees go under
 * `root`, fetched ones come from there. Scripts run with this host's bash in
 * `root`, with HOMECLOUD_ROOT set to it: target scripts that start with
 * root.bash put every path they touch under it; any other script runs as it is.
 */
export class LocalTransport implements Transport {
  constructor(readonly root: string) {}

  /** Where a path of the machine is here. */
  path(remote: string): string {
    return join(this.root, remote);
  }

  run(script: string, options: ScriptOptions = {}): Promise<ProcessResult> {
    return runProcess('bash', ['-c', script], { ...this.environment(), input: options.input, onLine: options.onLine, signal: options.signal, check: false });
  }

  open(script: string, options: { signal?: AbortSignal } = {}): ProcessSession {
    return openProcess('bash', ['-c', script], { ...this.environment(), signal: options.signal, check: false });
  }

  sendTree(local: string, remote: string, options: SendOptions = {}): Promise<ProcessResult> {
    mkdirSync(dirname(this.path(remote)), { recursive: true });
    const linkDest = options.linkDest?.startsWith('/') ? this.path(options.linkDest) : options.linkDest;
    return runProcess('rsync', treeArguments(local, this.path(remote), { ...options, linkDest }), { signal: options.signal, check: false });
  }

  fetchTree(remote: string, local: string): Promise<ProcessResult> {
    return runProcess('rsync', fetchArguments(this.path(remote), local), { check: false });
  }

  describeFailure(stderr: string): string {
    return lastLines(stderr) || 'the script failed';
  }

  close(): void {}

  private environment() {
    return { cwd: this.root, env: { ...process.env, HOMECLOUD_ROOT: this.root } };
  }
}
