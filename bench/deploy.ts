import { spawn } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { withScratchSandbox } from './scratch.ts';
import { median, printTable, timeProcess, type Row } from './stats.ts';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin/homecloud.cjs');

/** Deploying the example to three sandbox machines: nothing changed, and one file whose service restarts. */
export function benchDeploy(runs = 9): Promise<Row[]> {
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
  const child = spawn(process.execPath, [cli, '-C', repo, '--sandbox', 'watch', 'nas'], { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'inherit'] });
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
