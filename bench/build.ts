import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Builder } from '../src/build/builder.ts';
import { RepoPaths } from '../src/load/repo.ts';
import { generateRepository, realisticShape } from './synthetic.ts';
import { median, printTable, timeAsync, timeProcess, type Row } from './stats.ts';

const cli = resolve(import.meta.dirname, '../bin/homecloud.cjs');
const stdlib = resolve(import.meta.dirname, '../layers');

/** Build benchmarks on a generated repository: whole-process and warm in-process. */
export async function benchBuild(runs = 21): Promise<Row[]> {
  const root = mkdtempSync(join(tmpdir(), 'homecloud-bench-'));
  try {
    generateRepository(root);
    const buildCli = () => timeProcess(process.execPath, [cli, '-C', root, 'build']);
    const plainFile = join(root, 'layers/layer4/usr/local/opt/app4/part3/file13.txt');
    const template = join(root, 'layers/layer5/usr/local/opt/app5/part0/config10.m4.conf');
    const facts = join(root, 'facts/m2.json');
    let counter = 0;
    const touchPlain = () => appendFileSync(plainFile, `change ${++counter}\n`);
    const touchTemplate = () => appendFileSync(template, `# change ${++counter}\n`);
    const touchFact = () => writeFileSync(facts, readFileSync(facts, 'utf8').replace(/"ENV_WORKERS": \d+/, `"ENV_WORKERS": ${10 + (++counter % 50)}`));

    // This machine's timing drifts, by tens of milliseconds within a minute (slowest right after heavy work,
    // such as `npm run build` and the cold builds): `node -e 0` runs right before every measured build, and a
    // build's cost over the floor is the median of what each run took over the `node -e 0` before it.
    const floorRuns: number[] = [];
    const cold = median(
      Array.from({ length: 3 }, () => {
        rmSync(join(root, 'var'), { recursive: true, force: true });
        return buildCli();
      }),
    );
    // The cold builds leave thousands of freshly written files: flush them, so that their write-back does not slow what follows.
    spawnSync('sync');
    const measure = (change: () => void) => {
      const floors: number[] = [];
      const times = Array.from({ length: runs }, () => {
        floors.push(timeProcess(process.execPath, ['-e', '0']));
        change();
        return buildCli();
      });
      floorRuns.push(...floors);
      return { median: median(times), over: median(times.map((time, i) => time - floors[i]!)) };
    };
    const target = (build: { over: number }, within: number) => ({
      target: `floor + ${within} ms: + ${build.over.toFixed(1)}`,
      met: build.over <= within,
    });
    // The first builds after the cold ones write the code caches of the paths that follow and the up-to-date stamp.
    for (let i = 0; i < 3; i++) buildCli();
    const noChange = measure(() => {});
    // The first build with nothing to do after one that built: the builder looks (and leaves the up-to-date stamp that the next ones answer from).
    const firstNoChange = measure(() => {
      touchPlain();
      buildCli();
    });
    const onePlain = measure(touchPlain);
    const oneTemplate = measure(touchTemplate);
    const oneFact = measure(touchFact);
    const floor = median(floorRuns);

    // A warm builder, as `watch` keeps one: told which file changed, as a watcher would.
    const builder = new Builder(new RepoPaths(root, stdlib));
    await builder.build();
    // `watch` runs for hours: a few untimed rounds first, as its code would be compiled by then.
    const warm = async (change: () => void, path: string) => {
      for (let i = 0; i < 3; i++) {
        change();
        await builder.build({ changed: [path] });
      }
      const times: number[] = [];
      for (let i = 0; i < runs; i++) {
        change();
        times.push(await timeAsync(() => builder.build({ changed: [path] })));
      }
      return median(times);
    };
    const warmPlain = await warm(touchPlain, plainFile);
    const warmTemplate = await warm(touchTemplate, template);
    const warmFact = await warm(touchFact, facts);

    const shape = `${realisticShape.machines} machines, ${realisticShape.layers} layers, ${realisticShape.layers * (realisticShape.filesPerLayer + 4)} files`;
    console.log(`\nBuild benchmark (${shape}; median of ${runs} runs unless noted)`);
    const rows: Row[] = [
      { name: 'node -e 0 (start-up floor)', median: floor, runs: floorRuns.length },
      { name: 'build, cold', median: cold, runs: 3 },
      { name: 'build, no change', median: noChange.median, runs, ...target(noChange, 30) },
      { name: 'build, no change, the first after a change', median: firstNoChange.median, runs },
      { name: 'build, one plain file changed', median: onePlain.median, runs, ...target(onePlain, 60) },
      { name: 'build, one template changed', median: oneTemplate.median, runs, ...target(oneTemplate, 60) },
      { name: 'build, one fact changed', median: oneFact.median, runs },
      { name: 'warm rebuild, one plain file', median: warmPlain, runs, target: '<= 20 ms', met: warmPlain <= 20 },
      { name: 'warm rebuild, one template', median: warmTemplate, runs, target: '<= 20 ms', met: warmTemplate <= 20 },
      { name: 'warm rebuild, one fact', median: warmFact, runs },
    ];
    printTable('build', rows);
    return rows;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
