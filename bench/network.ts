import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Sandbox } from '../src/sandbox/sandbox.ts';
import { shellQuote } from '../src/util/quote.ts';
import { withScratchSandbox } from './scratch.ts';
import { median, printTable, timeProcess, type Row } from './stats.ts';

const root = resolve(import.meta.dirname, '..');

/** Python run on a machine: NAME RUNS; prints [uncached ms..., cached ms...] of an A query to resolved's stub. */
const lookupTimer = `
import json, socket, struct, subprocess, sys, time
name, runs = sys.argv[1], int(sys.argv[2])
packet = struct.pack(">HHHHHH", 0x4843, 0x0100, 1, 0, 0, 0) + b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\\0" + struct.pack(">HH", 1, 1)
def ask():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    started = time.perf_counter()
    s.sendto(packet, ("127.0.0.53", 53))
    answer = s.recv(1500)
    took = (time.perf_counter() - started) * 1000
    if struct.unpack(">H", answer[6:8])[0] < 1: raise SystemExit("no answer for " + name)
    return took
uncached, cached = [], []
for _ in range(runs):
    subprocess.run(["resolvectl", "flush-caches"], check=True)
    subprocess.run(["systemctl", "kill", "--kill-whom=main", "--signal=HUP", "homecloud-dns"], check=True)
    time.sleep(0.2)
    uncached.append(ask())
    cached.append(ask())
print(json.dumps([uncached, cached]))
`;
const machines = ['a', 'b', 'c'];

/** Run a command on a machine; its trimmed standard output. */
function on(sandbox: Sandbox, machine: string, command: string): string {
  const result = spawnSync('ssh', [...sandbox.sshArguments(machine), command], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${machine}: ${command}: ${result.stderr}`);
  return result.stdout.trim();
}

/** The same, started at once on every machine; their outputs. */
function onAll(sandbox: Sandbox, command: string): Promise<string[]> {
  return Promise.all(
    machines.map(
      (machine) =>
        new Promise<string>((done, fail) => {
          const child = spawn('ssh', [...sandbox.sshArguments(machine), command]);
          let out = '';
          child.stdout.on('data', (chunk) => (out += chunk));
          child.on('close', (status) => (status === 0 ? done(out.trim()) : fail(new Error(`${machine}: ${command} exited ${status}`))));
        }),
    ),
  );
}

/**
 * The overlay and dns layers on three sandbox machines of the cloud image (wireguard-go), c with a container:
 * the mesh's convergence after a first deploy to fresh machines, a name of c's container resolved from a
 * (uncached and cached), and the latency the overlay adds over the sandbox's bridge.
 */
export function benchNetwork(runs = 3, lookups = 15): Promise<Row[]> {
  return withScratchSandbox('network', async (sandbox, repo) => {
    const files: Record<string, string> = {
      'inventory.json': '{}',
      'facts/c.json': '{"ENV_CONTAINERS_SUBNET": "10.250.9.0/24"}',
      'machines/c/usr/local/opt/containers/web.conf': 'IMAGE=self\n',
    };
    for (const machine of machines)
      files[`machines/${machine}/usr/local/opt/initd/layers/10.txt`] = `+ overlay\n+ dns\n${machine === 'c' ? '+ containers\n' : ''}`;
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(dirname(join(repo, path)), { recursive: true });
      writeFileSync(join(repo, path), content);
    }
    const deploy = () => timeProcess(process.execPath, [join(root, 'bin/homecloud.cjs'), '-C', repo, '--sandbox', 'deploy']);

    // Fresh machines each run: one deploy makes the keys, then the peers; from its end, until every machine has
    // shaken hands with every other (each machine polls its own interface, on the one clock they share).
    const deploys: number[] = [];
    const converged: number[] = [];
    for (let i = 0; i < runs; i++) {
      await sandbox.down(machines);
      await sandbox.up(machines, { image: 'cloud' });
      deploys.push(deploy());
      const endedAt = BigInt(Date.now()) * 1_000_000n;
      const poll = `until [[ $(wg show hc-overlay latest-handshakes | awk '$2 > 0' | wc -l) -ge ${machines.length - 1} ]]; do sleep 0.01; done; date +%s%N`;
      const done = (await onAll(sandbox, `timeout 60 bash -c ${shellQuote(poll)}`)).map(BigInt);
      const last = done.reduce((a, b) => (a > b ? a : b));
      converged.push(Math.max(0, Number(last - endedAt) / 1e6));
    }

    // A name of another machine's container from a, as a program asks it: a DNS query to resolved's stub, timed
    // in the asking process. Uncached: resolved's cache flushed and dnsmasq's cleared (SIGHUP) first, so that the
    // answer comes from c's dnsmasq over the overlay; cached: the same query again at once.
    on(sandbox, 'a', 'for _ in $(seq 100); do getent hosts web.c.home.arpa >/dev/null && break; sleep 0.1; done');
    const [uncached, cached] = JSON.parse(on(sandbox, 'a', `python3 -c ${shellQuote(lookupTimer)} web.c.home.arpa ${lookups}`)) as [number[], number[]];
    // A TCP connection (one round trip) from a to c's sshd, over the sandbox's bridge and over the overlay.
    const bridge = sandbox.list().find((machine) => machine.name === 'c')!.address;
    const overlay = on(sandbox, 'c', 'ip -4 -br address show hc-overlay').split(/\s+/)[2]!.split('/')[0]!;
    const connects = (address: string) =>
      on(
        sandbox,
        'a',
        `for _ in $(seq 41); do t0=$EPOCHREALTIME; exec 3<>/dev/tcp/${address}/22; t1=$EPOCHREALTIME; exec 3<&-; echo $(( \${t1/./} - \${t0/./} )); done`,
      )
        .split('\n')
        .map((microseconds) => Number(microseconds) / 1000);
    const overBridge = median(connects(bridge));
    const overOverlay = median(connects(overlay));

    const rows: Row[] = [
      { name: 'first deploy to three fresh machines (keys, then peers)', median: median(deploys), runs },
      { name: 'mesh converged after that deploy (all handshakes)', median: median(converged), runs, target: '<= 2000 ms', met: median(converged) <= 2000 },
      { name: "c's container from a, uncached (over the overlay)", median: median(uncached), runs: lookups, target: '<= 10 ms', met: median(uncached) <= 10 },
      { name: "c's container from a, cached", median: median(cached), runs: lookups, target: '<= 1 ms', met: median(cached) <= 1 },
      { name: 'TCP connect a to c over the bridge', median: overBridge, runs: 41 },
      { name: 'TCP connect a to c over the overlay', median: overOverlay, runs: 41 },
      { name: 'added by the overlay (wireguard-go)', median: overOverlay - overBridge, runs: 41 },
    ];
    printTable('network (overlay and dns layers on three sandbox machines, wireguard-go)', rows);
    return rows;
  });
}
