import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { checkSandboxPaths } from '../src/check/boot.ts';
import { RepoPaths } from '../src/load/repo.ts';
import { median, printTable, timeProcessOutput, type Row } from './stats.ts';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin/homecloud.cjs');

/**
 * `homecloud check` of the example (three machines), as a user's CI runs it: without --boot (build, shellcheck,
 * systemd-analyze verify and nginx -t in a throwaway copy of the cloud image), and with it (each machine booted
 * as a sandbox machine, deployed and rebooted). The first run makes the cloud image when it is missing: not timed.
 */
export async function benchCheck(runs = 5, bootRuns = 3): Promise<Row[]> {
  const repo = mkdtempSync(join(tmpdir(), 'homecloud-bench-check-'));
  try {
    cpSync(join(root, 'examples/homelab'), repo, { recursive: true, verbatimSymlinks: true, filter: (source) => !source.includes('/var') });
    const check = (...args: string[]) => timeProcessOutput(process.execPath, [cli, '-C', repo, 'check', ...args]).milliseconds;
    check();
    const plain = median(Array.from({ length: runs }, () => check()));
    const booted = median(Array.from({ length: bootRuns }, () => check('--boot')));
    const rows: Row[] = [
      { name: 'check, the example (3 machines), built already', median: plain, runs },
      { name: 'check --boot, the example (3 machines)', median: booted, runs: bootRuns },
    ];
    printTable('check (the example)', rows);
    return rows;
  } finally {
    // check --boot keeps its sandbox's pool for the next run of that repository: not this throwaway one's.
    rmSync(checkSandboxPaths(new RepoPaths(repo)).home, { recursive: true, force: true });
    rmSync(repo, { recursive: true, force: true });
  }
}
