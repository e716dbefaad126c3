import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { request } from '../test/helpers/web.ts';
import { withScratchSandbox } from './scratch.ts';
import { median, printTable, timeAsync, timeProcess, type Row } from './stats.ts';

const root = resolve(import.meta.dirname, '..');

/** A machine with the nginx and lambda layers: a lambda through nginx, against a static answer and a scale-to-zero service; a 16 MiB response. */
export function benchLambda(runs = 21): Promise<Row[]> {
  const files: Record<string, string> = {
    'inventory.json': '{}',
    'facts/lam.json': '{"ENV_LAMBDA_IDLE_TIME": "1s"}',
    'machines/lam/usr/local/opt/initd/layers/10.txt': '+ nginx\n+ lambda\n',
    'machines/lam/usr/local/opt/nginx/server.d/50-static.conf': 'location = /static { return 200 "static\\n"; }\n',
    'machines/lam/usr/local/opt/lambda/bin/hello': '#!/bin/bash\necho hello\n',
    'machines/lam/usr/local/opt/lambda/bin/large': '#!/bin/bash\nhead -c 16M /dev/zero\n',
    'machines/lam/usr/local/lib/systemd/system/files.service':
      '[Service]\nExecStart=/usr/bin/python3 -m http.server 18080 --bind 127.0.0.1 --directory /usr/local/opt/files\nDynamicUser=yes\n',
    'machines/lam/usr/local/opt/files/index.html': 'files\n',
    'machines/lam/usr/local/opt/lambda/scale-to-zero/files.conf': 'LISTEN=8080\nBACKEND=127.0.0.1:18080\n',
    // The base layer's firewall drops what no layer opens.
    'machines/lam/usr/local/etc/nftables/input.d/50-files.nft': 'tcp dport 8080 accept\n',
  };
  return withScratchSandbox('lambda', async (sandbox, repo) => {
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(dirname(join(repo, path)), { recursive: true });
      writeFileSync(join(repo, path), content);
    }
    for (const name of ['hello', 'large']) chmodSync(join(repo, `machines/lam/usr/local/opt/lambda/bin/${name}`), 0o755);
    await sandbox.up(['lam']);
    const address = sandbox.list().find((m) => m.name === 'lam')!.address;
    const on = (command: string) => spawnSync('ssh', [...sandbox.sshArguments('lam'), command], { encoding: 'utf8' }).stdout.trim();
    const waitUntil = (command: string, expected: string) => {
      for (let i = 0; i < 300 && on(command) !== expected; i++) spawnSync('sleep', ['0.1']);
    };
    timeProcess(process.execPath, [join(root, 'bin/homecloud.cjs'), '-C', repo, '--sandbox', 'deploy']);

    /** Time one GET on a fresh connection, checking the answer (its body, or its length). */
    const get = (url: string, body: string | number) =>
      timeAsync(async () => {
        const answer = await request(url).catch((error: Error) => {
          throw new Error(`${url}: ${error.message}`);
        });
        if (answer.status !== 200 || (typeof body === 'number' ? answer.body.length !== body : answer.body !== body))
          throw new Error(`${url}: ${answer.status} ${answer.body.slice(0, 200)}`);
      });
    await get(`http://${address}/static`, 'static\n');
    const staticTimes: number[] = [];
    for (let i = 0; i < runs; i++) staticTimes.push(await get(`http://${address}/static`, 'static\n'));
    // Every lambda request is cold: it starts the function's process, which is gone before the next.
    const lambdaTimes: number[] = [];
    for (let i = 0; i < runs; i++) {
      waitUntil("systemctl list-units --plain --no-legend 'lambda-hello@*'", '');
      lambdaTimes.push(await get(`http://${address}/hello/`, 'hello\n'));
    }
    const largeRuns = Math.min(runs, 7);
    const largeTimes: number[] = [];
    for (let i = 0; i < largeRuns; i++) {
      waitUntil("systemctl list-units --plain --no-legend 'lambda-large@*'", '');
      largeTimes.push(await get(`http://${address}/large/`, 16 << 20));
    }
    const frontRuns = Math.min(runs, 7);
    const frontTimes: number[] = [];
    for (let i = 0; i < frontRuns; i++) {
      waitUntil('systemctl is-active files.service || true', 'inactive');
      frontTimes.push(await get(`http://${address}:8080/`, 'files\n'));
    }
    const rows: Row[] = [
      { name: 'nginx static answer (the floor: host to machine over the bridge)', median: median(staticTimes), runs },
      { name: 'lambda through nginx, cold (a process per request)', median: median(lambdaTimes), runs },
      { name: 'lambda answering 16 MiB', median: median(largeTimes), runs: largeRuns },
      { name: 'scale-to-zero service, first request (python http.server started)', median: median(frontTimes), runs: frontRuns },
    ];
    printTable('lambda (one sandbox machine, requests from the host)', rows);
    return rows;
  });
}
