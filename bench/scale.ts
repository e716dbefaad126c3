import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Sandbox } from '../src/sandbox/sandbox.ts';
import { closeConnection } from '../src/transport/ssh.ts';
import { withScratchSandbox } from './scratch.ts';
import { generateRepository, realisticShape } from './synthetic.ts';
import { median, printTable, timeProcess, type Row } from './stats.ts';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin/homecloud.cjs');
/** GNU time reports a process's peak RSS (%M, in KiB): the largest of the process and the children it waited for, which the CLI is. */
const gnuTime = '/usr/bin/time';

export interface ScaleOptions {
  runs: number;
  /** Machine counts of the build series (all sharing 30 layers). */
  builds: number[];
  /** Machine counts of the deploy series (sandbox machines, deployed at once). */
  deploys: number[];
}

export const defaultScale: ScaleOptions = { runs: 5, builds: [10, 50, 200], deploys: [1, 5, 10, 20] };

/**
 * How cost grows with the number of machines: builds of 10 to 200 machines
 * that share 30 layers, and deploys to 1 to 20 sandbox machines at once. Each
 * row says its median against the smallest case of its series, and the CLI's
 * peak RSS (the largest of its runs).
 */
export async function benchScaling(options: ScaleOptions = defaultScale): Promise<Row[]> {
  const rows: Row[] = [];
  if (options.builds.length) rows.push(...(await scaleBuilds(options.builds, options.runs)));
  if (options.deploys.length) rows.push(...(await scaleDeploys(options.deploys, options.runs)));
  return rows;
}

/** A whole node process's wall time and peak RSS (MiB; undefined without GNU time). */
function timeWithPeak(args: string[]): { milliseconds: number; peak?: number } {
  if (!existsSync(gnuTime)) return { milliseconds: timeProcess(process.execPath, args) };
  const report = join(tmpdir(), `homecloud-bench-rss-${process.pid}`);
  try {
    const milliseconds = timeProcess(gnuTime, ['-f', '%M', '-o', report, process.execPath, ...args]);
    return { milliseconds, peak: Number(readFileSync(report, 'utf8').trim().split('\n').pop()) / 1024 };
  } finally {
    rmSync(report, { force: true });
  }
}

/** Rows of one series: each median against the first. */
function series(rows: Row[]): Row[] {
  const first = rows[0]?.median;
  return rows.map((row) => ({ ...row, ratio: first ? row.median / first : undefined }));
}

/** A row of timed runs: their median, and the largest peak RSS among them. */
function summary(name: string, samples: { milliseconds: number; peak?: number }[]): Row {
  const peaks = samples.flatMap((sample) => (sample.peak === undefined ? [] : [sample.peak]));
  return { name, median: median(samples.map((sample) => sample.milliseconds)), runs: samples.length, peakRss: peaks.length ? Math.max(...peaks) : undefined };
}

/**
 * 10, 50 and 200 machines, each with 10 of 30 shared layers (3,000 source
 * files, 10% templates), layer0 among them: cold (once each: minutes at 200),
 * no change, and one plain file of layer0 changed, which every machine's tree
 * has. Every run is timed whole, under GNU time for its peak RSS, and so is
 * the `node -e 0` before each measured build, whose median is the floor.
 */
async function scaleBuilds(sizes: number[], runs: number): Promise<Row[]> {
  const cold: Row[] = [];
  const none: Row[] = [];
  const one: Row[] = [];
  const floorRuns: number[] = [];
  const shape = { ...realisticShape, sharedLayer: true };
  let outputs = 0;
  for (const machines of sizes) {
    const repo = mkdtempSync(join(tmpdir(), `homecloud-bench-scale-${machines}-`));
    try {
      generateRepository(repo, { ...shape, machines });
      const build = [cli, '-C', repo, 'build'];
      const first = timeWithPeak(build);
      outputs = countOutputs(repo, 'm0');
      cold.push({ name: `build, cold: ${machines} machines`, median: first.milliseconds, runs: 1, peakRss: first.peak });
      // Thousands of freshly written files: flushed, so that their write-back does not slow what follows.
      spawnSync('sync');
      const measure = (name: string, change: () => void) =>
        summary(
          name,
          Array.from({ length: runs }, () => {
            floorRuns.push(timeWithPeak(['-e', '0']).milliseconds);
            change();
            return timeWithPeak(build);
          }),
        );
      none.push(measure(`build, no change: ${machines} machines`, () => {}));
      const shared = join(repo, 'layers/layer0/usr/local/opt/app0/part3/file13.txt');
      let counter = 0;
      one.push(measure(`build, one file changed in a layer all use: ${machines} machines`, () => appendFileSync(shared, `change ${++counter}\n`)));
    } finally {
      rmSync(repo, { recursive: true, force: true });
    }
  }
  const target = none.find((row) => row.name.endsWith(': 200 machines'));
  if (target) Object.assign(target, { target: '< 500 ms', met: target.median < 500 });
  const rows: Row[] = [
    { name: 'node -e 0 (start-up floor)', median: median(floorRuns), runs: floorRuns.length },
    ...series(cold),
    ...series(none),
    ...series(one),
  ];
  const sources = shape.layers * shape.filesPerLayer;
  printTable(
    `build (${shape.layers} layers of ${shape.filesPerLayer} files shared by all machines, ${sources.toLocaleString('en')} source files; ${shape.layersPerMachine} layers and about ${outputs.toLocaleString('en')} paths per machine; whole process, ratio against ${sizes[0]} machines)`,
    rows,
  );
  return rows;
}

/** How many paths a built machine's manifest has. */
function countOutputs(repo: string, machine: string): number {
  const manifest = JSON.parse(readFileSync(join(repo, 'var/build', machine, 'manifest.json'), 'utf8')) as { entries: Record<string, unknown> };
  return Object.keys(manifest.entries).length;
}

/** A small repository: the prelude-only base layer and one layer of 50 files, a template and a service that reads a file. */
function writeDeployRepository(repo: string): string {
  const write = (path: string, content: string | Buffer, mode = 0o644) => {
    mkdirSync(join(repo, path, '..'), { recursive: true });
    writeFileSync(join(repo, path), content, { mode });
  };
  write('layers/_/usr/local/include/m4/00-prelude.m4', readFileSync(join(root, 'layers/_/usr/local/include/m4/00-prelude.m4')));
  const layer = 'layers/app/usr/local';
  for (let dir = 0; dir < 5; dir++)
    for (let file = 0; file < 10; file++) write(`${layer}/share/app/d${dir}/f${file}.txt`, `file ${dir}/${file}\n${'x'.repeat(100 + 37 * file)}\n`);
  write(`${layer}/etc/app.m4.conf`, 'name ENV_MACHINE\nport m5_or([ENV_APP_PORT], 8080)\n');
  write(`${layer}/opt/app/greeting.txt`, 'hello\n');
  write(`${layer}/bin/app`, '#!/bin/bash\n# Reads its greeting once a minute.\nwhile :; do read -r _ < "$1"; sleep 60; done\n', 0o755);
  write(
    `${layer}/lib/systemd/system/app.service`,
    '[Unit]\nDescription=Reads a greeting\n\n[Service]\nExecStart=/usr/local/bin/app /usr/local/opt/app/greeting.txt\n\n[Install]\nWantedBy=multi-user.target\n',
  );
  mkdirSync(join(repo, layer, 'lib/systemd/system/multi-user.target.wants'), { recursive: true });
  symlinkSync('../app.service', join(repo, layer, 'lib/systemd/system/multi-user.target.wants/app.service'));
  return join(repo, layer, 'opt/app/greeting.txt');
}

/**
 * The small repository deployed to 1, 5, 10 and 20 sandbox machines at once
 * (--jobs at its default): nothing changed, and one file changed whose
 * service restarts on every machine. Machines are booted as the series grows.
 */
function scaleDeploys(sizes: number[], runs: number): Promise<Row[]> {
  return withScratchSandbox('scale', async (sandbox, repo) => {
    const greeting = writeDeployRepository(repo);
    const none: Row[] = [];
    const one: Row[] = [];
    const deploy = () => timeWithPeak([cli, '-C', repo, '--sandbox', 'deploy']);
    let counter = 0;
    try {
      for (const machines of sizes) {
        const names = Array.from({ length: machines }, (_, i) => `s${i + 1}`);
        await sandbox.up(names);
        for (const name of names) {
          const list = join(repo, 'machines', name, 'usr/local/opt/initd/layers/10.txt');
          mkdirSync(join(list, '..'), { recursive: true });
          writeFileSync(list, '+ app\n');
        }
        // The new machines' first deploy, untimed.
        deploy();
        const count = `${machines} machine${machines === 1 ? '' : 's'}`;
        none.push(summary(`deploy, no change: ${count}`, Array.from({ length: runs }, deploy)));
        const changed = Array.from({ length: runs }, () => {
          writeFileSync(greeting, `hello ${++counter}\n`);
          return deploy();
        });
        one.push(summary(`deploy, one file changed (its service restarts): ${count}`, changed));
      }
    } finally {
      closeConnections(sandbox);
    }
    const target = none.find((row) => row.name.endsWith(': 20 machines'));
    if (target) Object.assign(target, { target: '<= 2000 ms', met: target.median <= 2000 });
    const rows = [...series(none), ...series(one)];
    printTable(
      `deploy (a layer of 50 files, a template and a service; to every sandbox machine at once, --jobs at its default; ratio against ${sizes[0]} machine${sizes[0] === 1 ? '' : 's'})`,
      rows,
    );
    return rows;
  });
}

/** The deploys' SSH master connections (ControlPersist) end with the bench, not a minute later. */
function closeConnections(sandbox: Sandbox): void {
  for (const [machine, entry] of Object.entries(sandbox.inventory())) closeConnection({ machine, entry });
}
