import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SandboxPaths } from '../src/sandbox/paths.ts';
import { Sandbox } from '../src/sandbox/sandbox.ts';

/**
 * A sandbox of its own and an empty scratch repository for one benchmark, with
 * HOMECLOUD_SANDBOX pointing at the sandbox meanwhile; both are removed afterwards, failed or not.
 */
export async function withScratchSandbox<T>(name: string, task: (sandbox: Sandbox, repo: string) => Promise<T>): Promise<T> {
  const home = mkdtempSync(join(tmpdir(), `homecloud-bench-${name}-`));
  const repo = mkdtempSync(join(tmpdir(), `homecloud-bench-${name}-repo-`));
  const sandbox = new Sandbox(new SandboxPaths(home));
  process.env.HOMECLOUD_SANDBOX = home;
  try {
    return await task(sandbox, repo);
  } finally {
    await sandbox.down('all');
    delete process.env.HOMECLOUD_SANDBOX;
    rmSync(home, { recursive: true, force: true });
    rmSync(repo, { recursive: true, force: true });
  }
}
