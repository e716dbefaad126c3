import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { withScratchSandbox } from './scratch.ts';
import { median, printTable, timeProcess, type Row } from './stats.ts';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin/homecloud.cjs');

/** Deploying the example to three sandbox machines, then a layer of 20,000 files to one. */
export async function benchDeploy(runs = 9): Promise<Row[]> {
  return [...(await benchExample(runs)), ...(await benchScale())];
}

/** Deploying the example to three sandbox machines: nothing changed, and one file whose service restarts. */
function benchExample(runs: number): Promise<Row[]> {
  return withScratchSandbox('deploy', async (sandbox, repo) => {
    cpSync(join(root, 'examples/homelab'), repo, { recursive: true, verbatimSymlinks: true, filter: (source) => !source.includes('/var') });
    await sandbox.up(['gateway', 'nas', 'media']);
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
    const loop = median(await watchLoops(repo, facts, original, runs));
    const rows: Row[] = [
      { name: 'deploy to 3 machines, no change', median: noChange, runs, target: '<= 1000 ms', met: noChange <= 1000 },
      { name: 'deploy to 3 machines, one file changed (its service restarts)', median: oneChange, runs, target: '<= 1000 ms', met: oneChange <= 1000 },
      { name: 'watch: save to restarted service', median: loop, runs, target: '<= 1000 ms', met: loop <= 1000 },
    ];
    printTable('deploy (the example, sandbox machines)', rows);
    return rows;
  });
}

/** `watch nas`: from writing a fact to the line saying its service restarted (printed after the target's health check). */
async function watchLoops(repo: string, facts: string, original: string, runs: number): Promise<number[]> {
  const child = spawn(process.execPath, [cli, '-C', repo, '--sandbox', 'watch', 'nas'], {
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (process.env.HOMECLOUD_BENCH_DEBUG) child.stdout.pipe(process.stderr);
  let output = '';
  const lines: ((line: string) => void)[] = [];
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    let newline;
    while ((newline = output.indexOf('\n')) >= 0) {
      const line = output.slice(0, newline);
      output = output.slice(newline + 1);
      for (const listener of lines) listener(line);
    }
  });
  const next = (pattern: RegExp) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`watch printed nothing like ${pattern} in 30 s`)), 30_000);
      lines.push(function listener(line) {
        if (!pattern.test(line)) return;
        clearTimeout(timer);
        lines.splice(lines.indexOf(listener), 1);
        resolve();
      });
    });
  try {
    await next(/^watching /);
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const restarted = next(/deployed nas \(.*nas: restart hello\.service/);
      const started = process.hrtime.bigint();
      writeFileSync(facts, original.replace('Good morning', `Good evening ${i}`));
      await restarted;
      times.push(Number(process.hrtime.bigint() - started) / 1e6);
    }
    return times;
  } finally {
    child.kill('SIGINT');
    await new Promise((resolve) => child.once('exit', resolve));
  }
}

/**
 * A layer of 20,000 small files (200 directories of 100) on one machine: its
 * first deploy, a deploy with no change (the probe compares every path's
 * record with the last commit's), one file changed, and the layer removed
 * (pruning in batches). Each run goes through all four.
 */
export function benchScale(runs = 5): Promise<Row[]> {
  return withScratchSandbox('scale', async (sandbox, repo) => {
    const prelude = readFileSync(join(root, 'layers/_/usr/local/include/m4/00-prelude.m4'));
    mkdirSync(join(repo, 'layers/_/usr/local/include/m4'), { recursive: true });
    writeFileSync(join(repo, 'layers/_/usr/local/include/m4/00-prelude.m4'), prelude);
    const layers = join(repo, 'machines/big/usr/local/opt/initd/layers');
    mkdirSync(layers, { recursive: true });
    const many = join(repo, 'layers/many/usr/local/share/many');
    for (let dir = 0; dir < 200; dir++) {
      mkdirSync(join(many, `d${dir}`), { recursive: true });
      for (let file = 0; file < 100; file++) writeFileSync(join(many, `d${dir}`, `f${file}`), `file ${dir}/${file}\n`);
    }
    await sandbox.up(['big']);
    const deploy = () => timeProcess(process.execPath, [cli, '-C', repo, '--sandbox', 'deploy', 'big']);
    const samples = { first: [] as number[], none: [] as number[], one: [] as number[], removed: [] as number[] };
    for (let i = 0; i < runs; i++) {
      writeFileSync(join(layers, '10.txt'), '+ many\n');
      samples.first.push(deploy());
      samples.none.push(deploy());
      writeFileSync(join(many, 'd7/f7'), `changed ${i}\n`);
      samples.one.push(deploy());
      writeFileSync(join(layers, '10.txt'), '');
      samples.removed.push(deploy());
    }
    rmSync(join(repo, 'layers/many'), { recursive: true, force: true });
    const rows: Row[] = [
      { name: '20,000 files: first deploy', median: median(samples.first), runs },
      { name: '20,000 files: no change', median: median(samples.none), runs, target: '<= 1000 ms', met: median(samples.none) <= 1000 },
      { name: '20,000 files: one file changed', median: median(samples.one), runs },
      { name: '20,000 files: the layer removed', median: median(samples.removed), runs, target: '<= 3000 ms', met: median(samples.removed) <= 3000 },
    ];
    printTable('deploy a layer of 20,000 files (one sandbox machine)', rows);
    return rows;
  });
}
