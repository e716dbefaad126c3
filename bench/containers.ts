import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { shellQuote } from '../src/util/quote.ts';
import { quickWebServer, request } from '../test/helpers/web.ts';
import { withScratchSandbox } from './scratch.ts';
import { median, printTable, timeAsync, timeProcess, type Row } from './stats.ts';

const root = resolve(import.meta.dirname, '..');
const declarations = 'machines/host/usr/local/opt/containers';
// A web server in the container named od only (containers are clones of the host's root, /etc included).
const server = '[Unit]\nConditionHost=od\n[Service]\nExecStart=/usr/bin/python3 /etc/od-server.py\n[Install]\nWantedBy=multi-user.target\n';

/**
 * The containers layer on one sandbox machine of the cloud image (containers nested in it, cloned from its own
 * root): clone, clone to running, stop, the first request to an on-demand container, ten containers at once.
 */
export function benchContainers(runs = 7, fleetRuns = 3): Promise<Row[]> {
  return withScratchSandbox('containers', async (sandbox, repo) => {
    const write = (files: Record<string, string>) => {
      for (const [path, content] of Object.entries(files)) {
        mkdirSync(dirname(join(repo, path)), { recursive: true });
        writeFileSync(join(repo, path), content);
      }
    };
    write({
      'inventory.json': '{}',
      'facts/host.json': '{"ENV_CONTAINERS_SUBNET": "10.250.9.0/24", "ENV_CONTAINERS_IDLE_TIME": "1s"}',
      'machines/host/usr/local/opt/initd/layers/10.txt': '+ lambda\n+ containers\n',
      [`${declarations}/bench.conf`]: 'IMAGE=self\nSTART=no\n',
      [`${declarations}/od.conf`]: 'IMAGE=self\nSTART=on-demand\nPORTS=8090:8000\n',
    });
    await sandbox.up(['host'], { image: 'cloud' });
    const on = (command: string) => {
      const result = spawnSync('ssh', [...sandbox.sshArguments('host'), command], { encoding: 'utf8' });
      if (result.status !== 0) throw new Error(`${command}: ${result.stderr}`);
      return result.stdout.trim();
    };
    on(`printf '%s' ${shellQuote(server)} > /etc/systemd/system/od-server.service && systemctl enable -q od-server.service`);
    on(`printf '%s' ${shellQuote(quickWebServer(8000, '/etc'))} > /etc/od-server.py`);
    const deploy = () => timeProcess(process.execPath, [join(root, 'bin/homecloud.cjs'), '-C', repo, '--sandbox', 'deploy']);
    deploy();

    // One container, cloned afresh each run: the start (prepare's clone, then the boot to READY=1, sent once the
    // container's systemd has finished starting up), checked as running; then the stop.
    const clone: number[] = [];
    const boot: number[] = [];
    const stop: number[] = [];
    for (let i = 0; i < runs; i++) {
      const [cloned, started, stopped] = on(
        [
          'set -e',
          'source /usr/local/lib/homecloud/lib.bash; source /usr/local/lib/containers/lib.bash',
          // The deletion's commit done first: a snapshot waits for the transaction before it.
          'if [[ -d /var/lib/machines/bench ]]; then delete_tree /var/lib/machines/bench; btrfs -q filesystem sync /var/lib/machines; fi',
          'since=$(date +%s.%N); t0=$(date +%s%N)',
          'systemctl start homecloud-container@bench.service',
          't1=$(date +%s%N)',
          '[[ $(systemd-run -M bench --wait -q -P systemctl is-system-running --wait) == running ]]',
          't2=$(date +%s%N); systemctl stop homecloud-container@bench.service; t3=$(date +%s%N)',
          'cloned=$(journalctl -q -o cat -u homecloud-container@bench.service --since "@$since" | sed -n "s/.* by btrfs snapshot in \\([0-9]*\\) ms$/\\1/p" | tail -1)',
          'echo "${cloned:?not cloned by a btrfs snapshot} $(( (t1 - t0) / 1000000 )) $(( (t3 - t2) / 1000000 ))"',
        ].join('\n'),
      )
        .split(' ')
        .map(Number);
      clone.push(cloned!);
      boot.push(started!);
      stop.push(stopped!);
    }

    // The on-demand container from stopped: the request waits while it boots and its server starts.
    const address = sandbox.list().find((m) => m.name === 'host')!.address;
    const firstRequest: number[] = [];
    for (let i = 0; i < runs; i++) {
      on('for _ in $(seq 300); do systemctl -q is-active homecloud-container@od.service || break; sleep 0.1; done');
      firstRequest.push(
        await timeAsync(async () => {
          const answer = await request(`http://${address}:8090/hostname`);
          if (answer.status !== 200) throw new Error(`the on-demand container answered ${answer.status}`);
        }),
      );
    }

    // Ten containers declared at once: the deploy (build, sync, start) until all ten run.
    const names = Array.from({ length: 10 }, (_, i) => `t${i}`);
    const fleet: number[] = [];
    for (let i = 0; i < fleetRuns; i++) {
      for (const name of names) rmSync(join(repo, `${declarations}/${name}.conf`), { force: true });
      deploy();
      write(Object.fromEntries(names.map((name) => [`${declarations}/${name}.conf`, 'IMAGE=self\n'])));
      fleet.push(
        await timeAsync(async () => {
          deploy();
          on(`for name in ${names.join(' ')}; do until systemctl -q is-active homecloud-container@$name.service; do sleep 0.05; done; done`);
        }),
      );
    }

    const rows: Row[] = [
      { name: 'clone (btrfs snapshot of the root)', median: median(clone), runs, target: '<= 50 ms', met: median(clone) <= 50 },
      { name: 'clone to running (systemctl start)', median: median(boot), runs, target: '<= 1000 ms', met: median(boot) <= 1000 },
      { name: 'stop', median: median(stop), runs, target: '<= 500 ms', met: median(stop) <= 500 },
      { name: 'on-demand container, first request', median: median(firstRequest), runs, target: '<= 1500 ms', met: median(firstRequest) <= 1500 },
      { name: 'ten containers, declaration to all running', median: median(fleet), runs: fleetRuns, target: '<= 5000 ms', met: median(fleet) <= 5000 },
    ];
    printTable('containers (nested in one sandbox machine, cloned from its root)', rows);
    return rows;
  });
}
