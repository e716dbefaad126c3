import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Sandbox } from '../src/sandbox/sandbox.ts';
import { withScratchSandbox } from './scratch.ts';
import { median, printTable, timeProcess, type Row } from './stats.ts';

const root = resolve(import.meta.dirname, '..');

function on(sandbox: Sandbox, command: string): string {
  const result = spawnSync('ssh', [...sandbox.sshArguments('a'), `cd / && ${command}`], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${command}: ${result.stderr}`);
  return result.stdout.trim();
}

/**
 * The snapshots and postgres layers on one sandbox machine of the cloud image: a restore of a 1 GiB directory with
 * its unit's restart, a cluster's creation by a deploy, and a Postgres cluster of about 1 GiB snapshotted under
 * pgbench load, then a clone of that snapshot started (crash recovery) to ready.
 */
export function benchStorage(runs = 7): Promise<Row[]> {
  return withScratchSandbox('storage', async (sandbox, repo) => {
    const files: Record<string, string> = {
      'inventory.json': '{}',
      'machines/a/usr/local/opt/initd/layers/10.txt': '+ snapshots\n+ postgres\n',
      'machines/a/usr/local/opt/snapshots/data.conf': 'DIR=/srv/data\nEVERY=1d\nKEEP=100\nUNITS=demo.service\n',
      'machines/a/etc/systemd/system/demo.service': '[Service]\nWorkingDirectory=/srv/data\nExecStart=/bin/sleep infinity\n',
      'machines/a/usr/local/opt/initd/links/demo.txt': '/etc/systemd/system/multi-user.target.wants/demo.service ../demo.service\n',
      'machines/a/usr/local/opt/postgres/clusters/main.conf': 'SNAPSHOTS=1d\nKEEP=100\n',
      'machines/a/usr/local/opt/postgres/clusters/main/databases/bench.conf': '',
    };
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(dirname(join(repo, path)), { recursive: true });
      writeFileSync(join(repo, path), content);
    }
    await sandbox.up(['a'], { image: 'cloud' });
    const cli = (...args: string[]) => timeProcess(process.execPath, [join(root, 'bin/homecloud.cjs'), '-C', repo, '--sandbox', ...args]);
    cli('deploy');
    on(sandbox, 'head -c 1G /dev/urandom > /srv/data/blob && sync');

    // The snapshot itself, as the script times it (the journal line), whatever the size.
    const took = (unit: string) => Number(/ in (\d+) ms$/.exec(on(sandbox, `journalctl -q -o cat -u ${unit} | grep ' snapshot ' | tail -n 1`))?.[1] ?? NaN);
    const restore: number[] = [];
    for (let i = 0; i < runs; i++) {
      on(sandbox, 'sleep 1; systemctl start homecloud-snapshot@data.service');
      // The whole command: the lock, the list, the units stopped, the undo snapshot, the swap, the units started.
      restore.push(cli('restore', 'a', 'data'));
    }

    // A cluster declared and deployed: the whole deploy, and initdb's part of it as postgres-init logs it.
    const deployCluster: number[] = [];
    const initdb: number[] = [];
    const clusterFile = (n: number) => join(repo, `machines/a/usr/local/opt/postgres/clusters/new${n}.conf`);
    for (let i = 0; i < runs; i++) {
      writeFileSync(clusterFile(i), `PORT=${5440 + i}\n`);
      deployCluster.push(cli('deploy'));
      const made = on(sandbox, `journalctl -q -o cat -u homecloud-postgres@new${i}.service | grep 'made the cluster' | tail -n 1`);
      initdb.push(Number(/ in (\d+) ms$/.exec(made)?.[1] ?? NaN));
      rmSync(clusterFile(i));
      cli('deploy');
    }

    // Postgres of about 1 GiB under pgbench: a snapshot, then a clone of it started on another port, through crash recovery.
    on(sandbox, 'runuser -u postgres -- pgbench -q -i -s 70 bench >/dev/null 2>&1');
    const size = Number(on(sandbox, 'du -sb /var/lib/homecloud-postgres/main | cut -f1')) / 2 ** 30;
    on(sandbox, 'systemd-run -q --unit=load -p User=postgres pgbench -c 2 -T 600 bench');
    const underLoad: number[] = [];
    const clone: number[] = [];
    for (let i = 0; i < runs; i++) {
      on(sandbox, 'sleep 1; systemctl start homecloud-snapshot@postgres-main.service');
      underLoad.push(took('homecloud-snapshot@postgres-main.service'));
      const stamp = on(sandbox, 'ls /var/lib/homecloud-postgres/.snapshots/postgres-main | tail -n 1');
      const ms = on(
        sandbox,
        [
          'set -e',
          'rm -rf /srv/clone; btrfs -q subvolume delete /srv/clone 2>/dev/null || true',
          't0=${EPOCHREALTIME/./}',
          `btrfs -q subvolume snapshot /var/lib/homecloud-postgres/.snapshots/postgres-main/${stamp} /srv/clone`,
          'rm -f /srv/clone/postmaster.pid',
          `runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -w -t 60 -D /srv/clone -l /tmp/clone.log -o "-c config_file=/dev/null -c port=5499 -c listen_addresses='' -c unix_socket_directories=/tmp" start >/dev/null`,
          't1=${EPOCHREALTIME/./}',
          'runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -w -D /srv/clone stop -m immediate >/dev/null',
          'echo $(( (t1 - t0) / 1000 ))',
        ].join('\n'),
      );
      clone.push(Number(ms));
    }
    on(sandbox, 'systemctl stop load.service || true');

    const rows: Row[] = [
      {
        name: `snapshot of a Postgres cluster of ${size.toFixed(2)} GiB under pgbench`,
        median: median(underLoad),
        runs,
        target: '<= 100 ms',
        met: median(underLoad) <= 100,
      },
      {
        name: 'homecloud restore of 1 GiB, its unit restarted (whole command)',
        median: median(restore),
        runs,
        target: '<= 2000 ms',
        met: median(restore) <= 2000,
      },
      { name: 'a cluster declared: the whole deploy', median: median(deployCluster), runs },
      { name: 'a cluster declared: its initdb (postgres-init)', median: median(initdb), runs },
      { name: 'clone of the snapshot started, crash recovery, to ready', median: median(clone), runs, target: '<= 1000 ms', met: median(clone) <= 1000 },
    ];
    printTable('storage (snapshots and postgres layers on one sandbox machine)', rows);
    return rows;
  });
}
