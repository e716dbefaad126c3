import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { InventoryEntry } from '../src/load/inventory.ts';
import { closeConnection } from '../src/transport/ssh.ts';
import { withScratchSandbox } from './scratch.ts';
import { median, printTable, timeProcess, timeProcessOutput } from './stats.ts';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin/homecloud.cjs');
const machines = ['one', 'two', 'three'];

/** `homecloud status` of three sandbox machines a small repository was deployed to: the whole CLI process, wall time. */
export async function benchStatus(runs = 9): Promise<void> {
  await withScratchSandbox('status', async (sandbox, repo) => {
    const files: Record<string, string> = {
      'layers/_/usr/local/include/m4/00-prelude.m4': readFileSync(join(root, 'layers/_/usr/local/include/m4/00-prelude.m4'), 'utf8'),
      'layers/s/usr/local/opt/status/motd.txt': 'hello\n',
      'layers/s/usr/local/lib/systemd/system/status-idle.service': '[Service]\nExecStart=/bin/sleep infinity\n',
      ...Object.fromEntries(machines.map((machine) => [`machines/${machine}/usr/local/opt/initd/layers/10.txt`, '+ s\n'])),
    };
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(repo, path)), { recursive: true });
      writeFileSync(join(repo, path), text);
    }
    await sandbox.up(machines);
    timeProcess(process.execPath, [cli, '-C', repo, '--sandbox', 'deploy']);
    const status = () => timeProcess(process.execPath, [cli, '-C', repo, '--sandbox', 'status']);
    const warm = median(Array.from({ length: runs }, status));
    // After a minute without a command the shared connections are gone (ControlPersist): each run connects anew.
    const inventory = JSON.parse(readFileSync(sandbox.paths.inventory, 'utf8')) as Record<string, InventoryEntry>;
    const cold = median(
      Array.from({ length: runs }, () => {
        for (const machine of machines) closeConnection({ machine, entry: inventory[machine]! });
        return status();
      }),
    );
    printTable('status (3 sandbox machines, a small repository deployed)', [
      { name: 'status of 3 machines', median: warm, runs, target: '<= 1000 ms', met: warm <= 1000 },
      { name: 'status of 3 machines, connecting anew', median: cold, runs },
    ]);
    if (process.env.HOMECLOUD_BENCH_DEBUG) process.stderr.write(timeProcessOutput(process.execPath, [cli, '-C', repo, '--sandbox', 'status']).stdout);
  });
}
