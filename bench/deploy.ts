import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SandboxPaths } from '../src/sandbox/paths.ts';
import { Sandbox } from '../src/sandbox/sandbox.ts';
import { median, printTable, timeProcess, type Row } from './stats.ts';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin/homecloud.cjs');

/** Deploying the example to three sandbox machines: nothing changed, and one file whose service restarts. */
export async function benchDeploy(runs = 9): Promise<Row[]> {
  const home = mkdtempSync(join(tmpdir(), 'homecloud-bench-deploy-'));
  const repo = mkdtempSync(join(tmpdir(), 'homecloud-bench-repo-'));
  const sandbox = new Sandbox(new SandboxPaths(home));
  try {
    cpSync(join(root, 'examples/homelab'), repo, { recursive: true, verbatimSymlinks: true, filter: (source) => !source.includes('/var') });
    await sandbox.up(['gateway', 'nas', 'media']);
    process.env.HOMECLOUD_SANDBOX = home;
    const deploy = () => timeProcess(process.execPath, [cli, '-C', repo, '--sandbox', 'deploy']);
    deploy();
    const noChange = median(Array.from({ length: runs }, deploy));
    const facts = join(repo, 'facts/nas.json');
    const original = readFileSync(facts, 'utf8');
    const oneChange = median(
      Array.from({ length: runs }, (_, i) => {
        writeFileSync(facts, original.replace('Good morning', `Good morning ${i}`));
        return deploy();
      }),
    );
    const rows: Row[] = [
      { name: 'deploy to 3 machines, no change', median: noChange, runs, target: '<= 1000 ms', met: noChange <= 1000 },
      { name: 'deploy to 3 machines, one file changed (its service restarts)', median: oneChange, runs, target: '<= 1000 ms', met: oneChange <= 1000 },
    ];
    printTable('deploy (the example, sandbox machines)', rows);
    return rows;
  } finally {
    await sandbox.down('all');
    delete process.env.HOMECLOUD_SANDBOX;
    rmSync(home, { recursive: true, force: true });
    rmSync(repo, { recursive: true, force: true });
  }
}
