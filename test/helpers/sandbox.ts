import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { after } from 'node:test';
import { SandboxPaths } from '../../src/sandbox/paths.ts';
import { checkPrerequisites } from '../../src/sandbox/prerequisites.ts';
import { Sandbox, sshOptions } from '../../src/sandbox/sandbox.ts';
import type { ImageProfile } from '../../src/sandbox/image.ts';
import { runCli } from './repo.ts';

/**
 * Sandbox machines for an end-to-end test file: booted once, reset cheaply
 * (a fresh clone), and always removed when the file's tests end, failed or not.
 * Each file gets its own sandbox (directory, bridge, subnet).
 */
export class TestSandbox {
  readonly sandbox: Sandbox;

  constructor(
    readonly name: string,
    /** The image profile its machines boot (src/sandbox/image.ts). */
    readonly image: ImageProfile = 'base',
  ) {
    this.sandbox = new Sandbox(new SandboxPaths(`/var/lib/homecloud/test-${name}-${process.pid}`));
  }

  get paths(): SandboxPaths {
    return this.sandbox.paths;
  }

  up(names: string[]) {
    return this.sandbox.up(names, { image: this.image });
  }

  /** A machine as new: its clone is thrown away and made again from the base image. */
  async reset(name: string): Promise<void> {
    await this.sandbox.down([name]);
    await this.sandbox.up([name], { image: this.image });
  }

  /** Reboot a machine on its own disk (its files stay); resolves with how long the shutdown took. */
  reboot(name: string) {
    return this.sandbox.reboot(name);
  }

  /** Run a shell command on a machine over SSH. */
  ssh(name: string, command: string, extraOptions: string[] = []) {
    const result = spawnSync('ssh', [...extraOptions, ...this.sandbox.sshArguments(name), command], { encoding: 'utf8' });
    return { status: result.status, stdout: result.stdout.trim(), stderr: result.stderr.trim() };
  }

  /**
   * A fingerprint of a machine's file listing (paths, types, modes), outside
   * what a running system changes by itself; `also` prunes more paths.
   */
  listing(name: string, also: string[] = []): string {
    const pruned = ['/proc', '/sys', '/dev', '/run', '/tmp', '/var/log', '/var/cache', '/var/tmp', '/var/lib/systemd', '/var/lib/dhcp', '/root/.ssh', ...also];
    return this.ssh(name, `find / -xdev \\( ${pruned.map((path) => `-path ${path}`).join(' -o ')} \\) -prune -o -printf '%p %y %m\\n' | sort | md5sum`).stdout;
  }

  sshOptions(): string[] {
    return sshOptions(this.paths);
  }

  async destroy(): Promise<void> {
    await this.sandbox.down('all');
    rmSync(this.paths.home, { recursive: true, force: true });
  }
}

/**
 * The suite's sandbox, removed after the file's tests; or, when the host
 * cannot run sandbox machines, the reason (a failure under CI=true, where a
 * missing prerequisite must never pass silently).
 */
export function testSandbox(name: string, image: ImageProfile = 'base'): { box?: TestSandbox; skip: string | false } {
  try {
    checkPrerequisites();
  } catch (error) {
    if (process.env.CI === 'true') throw error;
    return { skip: `sandbox machines cannot run here: ${(error as Error).message}` };
  }
  const box = new TestSandbox(name, image);
  after(() => box.destroy());
  return { box, skip: false };
}

/** The CLI on a repository, reaching the test sandbox's machines (--sandbox). */
export function sandboxCli(box: TestSandbox | undefined, repo: string) {
  return (args: string[], env: Record<string, string> = {}) =>
    runCli(['-C', repo, '--sandbox', ...args], { env: { HOMECLOUD_SANDBOX: box?.paths.home ?? '', ...env } });
}
