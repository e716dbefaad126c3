import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SandboxPaths } from '../src/sandbox/paths.ts';
import { Sandbox, sshOptions } from '../src/sandbox/sandbox.ts';
import { median, printTable, timeAsync, type Row } from './stats.ts';

/** Sandbox machines: the base image, one machine to SSH-ready and to systemd running, three machines to SSH-ready. */
export async function benchSandbox(runs = 7): Promise<Row[]> {
  const home = mkdtempSync(join(tmpdir(), 'homecloud-bench-sandbox-'));
  const paths = new SandboxPaths(home);
  const sandbox = new Sandbox(paths);
  const rows: Row[] = [];
  try {
    // The first time only: a base image made from nothing, in a cache of its own.
    if (process.argv.includes('--image')) {
      const cache = mkdtempSync(join(tmpdir(), 'homecloud-bench-images-'));
      try {
        const fresh = new Sandbox(new SandboxPaths(join(home, 'fresh'), cache));
        const made = await timeAsync(() => fresh.up(['img']));
        await fresh.down('all');
        rows.push({ name: 'base image build + first machine', median: made, runs: 1 });
      } finally {
        rmSync(cache, { recursive: true, force: true });
      }
    }
    await sandbox.up(['warm']);
    await sandbox.down('all');

    const sshReady: number[] = [];
    const running: number[] = [];
    for (let i = 0; i < runs; i++) {
      const started = process.hrtime.bigint();
      await sandbox.up(['one']);
      sshReady.push(Number(process.hrtime.bigint() - started) / 1e6);
      const state = spawnSync('ssh', [...sshOptions(paths), `root@${paths.address(1)}`, 'systemctl is-system-running --wait'], { encoding: 'utf8' });
      running.push(Number(process.hrtime.bigint() - started) / 1e6);
      if (state.stdout.trim() !== 'running') throw new Error(`the machine is ${state.stdout.trim()}`);
      await sandbox.down('all');
    }
    const three: number[] = [];
    for (let i = 0; i < Math.max(3, runs - 2); i++) {
      three.push(await timeAsync(() => sandbox.up(['t1', 't2', 't3'])));
      await sandbox.down('all');
    }
    rows.push(
      { name: 'clone + boot, one machine, to SSH-ready', median: median(sshReady), runs },
      { name: 'clone + boot, one machine, to systemd running', median: median(running), runs, target: '< 1000 ms', met: median(running) < 1000 },
      { name: 'up of three machines (image cached), SSH-ready', median: median(three), runs: three.length, target: '<= 3000 ms', met: median(three) <= 3000 },
    );
    printTable('sandbox', rows);
    return rows;
  } finally {
    await sandbox.down('all');
    rmSync(home, { recursive: true, force: true });
  }
}
