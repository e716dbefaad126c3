import { writeFileSync } from 'node:fs';
import pLimit from 'p-limit';
import { Builder, machineOutput } from '../../build/builder.ts';
import { bootMachines } from '../../check/boot.ts';
import { junitReport } from '../../check/junit.ts';
import { checkKinds, describeProblem, timed, type CheckResult } from '../../check/results.ts';
import { shellcheckTree } from '../../check/shellcheck.ts';
import { verifyInImage } from '../../check/verify.ts';
import { errorJson, HomecloudError } from '../../load/errors.ts';
import { shownName } from '../../load/names.ts';
import { ensureImage, isImageProfile, imageProfiles, type ImageProfile } from '../../sandbox/image.ts';
import { SandboxPaths } from '../../sandbox/paths.ts';
import { checkPrerequisites } from '../../sandbox/prerequisites.ts';
import { colors, errorColors, exitStatus, milliseconds } from '../../report/output.ts';
import { runProcessSync } from '../../util/process.ts';
import { jobsFor, repoFrom } from '../context.ts';
import type { GlobalOptions } from '../options.ts';

interface CheckOptions extends GlobalOptions {
  boot?: boolean;
  junit?: string;
  image?: string;
}

/**
 * `homecloud check`: what a user's CI runs. Every machine is built; each built one has its scripts checked by
 * shellcheck and its units and nginx configurations in a throwaway copy of the sandbox image; with --boot, it is
 * booted as a sandbox machine and deployed. A line per check as it ends; exit status 1 when any failed.
 */
export async function run(machines: string[], options: CheckOptions): Promise<number> {
  const image = options.image ?? 'cloud';
  if (!isImageProfile(image)) throw new HomecloudError(`--image ${image}: not an image profile`, undefined, `one of ${Object.keys(imageProfiles).join(', ')}`);
  if (runProcessSync('shellcheck', ['--version'], { check: false }).status !== 0) {
    throw new HomecloudError('shellcheck is not installed: check runs it on every script', undefined, 'apt-get install shellcheck');
  }
  checkPrerequisites();
  const started = performance.now();
  const repo = repoFrom(options);
  const results: CheckResult[] = [];
  const width = { value: 0 };
  const report = (result: CheckResult) => {
    results.push(result);
    if (!options.json) process.stdout.write(formatResult(result, width.value));
  };
  const progress = (line: string) => {
    if (!options.json) process.stderr.write(`${errorColors.dim(line)}\n`);
  };

  const builder = new Builder(repo);
  const built = await builder.build({ machines });
  width.value = Math.max(...built.machines.map((m) => shownName(m.machine).length));
  for (const result of built.machines) {
    const error = result.error && errorJson(result.error);
    report({
      check: 'build',
      machine: result.machine,
      ok: result.status !== 'failed',
      summary: result.status === 'failed' ? 'the build failed' : `${result.paths ?? 0} paths`,
      problems: error ? [{ file: error.file, line: error.line, message: error.message + (error.hint ? ` (${error.hint})` : '') }] : [],
      milliseconds: result.milliseconds,
    });
  }
  const good = built.machines.filter((m) => m.status !== 'failed').map((m) => m.machine);
  const imageRoot = good.length > 0 ? ensureImage(new SandboxPaths().imageCache, progress, image as ImageProfile) : '';
  const limit = pLimit(jobsFor(options, built.model));
  await Promise.all(
    good.map((machine) =>
      limit(async () => {
        const tree = machineOutput(repo, machine).tree;
        const { layout } = await new Builder(repo).layout(machine);
        report(await timed('shellcheck', machine, () => shellcheckTree(repo, machine, tree, layout)));
        const verifyStarted = performance.now();
        const verified = await verifyInImage(repo, machine, tree, layout, imageRoot);
        const took = performance.now() - verifyStarted;
        report({ check: 'units', machine, ...verified.units, milliseconds: took });
        report({ check: 'nginx', machine, ...verified.nginx, milliseconds: 0 });
      }),
    ),
  );
  if (options.boot && good.length > 0) {
    const bootStarted = performance.now();
    const booted = await bootMachines(repo, good, image as ImageProfile, progress);
    const took = performance.now() - bootStarted;
    for (const machine of good) report({ check: 'boot', machine, ...booted.get(machine)!, milliseconds: took });
  }

  const order = (result: CheckResult) => checkKinds.indexOf(result.check);
  results.sort((a, b) => (a.machine < b.machine ? -1 : a.machine > b.machine ? 1 : order(a) - order(b)));
  const failed = results.filter((result) => !result.ok);
  if (options.junit) writeFileSync(options.junit, junitReport(results));
  if (options.json) {
    process.stdout.write(JSON.stringify({ ok: failed.length === 0, milliseconds: Math.round(performance.now() - started), checks: results }) + '\n');
  } else {
    const total = `${results.length} check${results.length === 1 ? '' : 's'} of ${built.machines.length} machine${built.machines.length === 1 ? '' : 's'}`;
    process.stdout.write(
      failed.length
        ? colors.red(`${failed.length} of ${total} failed (${milliseconds(performance.now() - started)}).\n`)
        : `${total} passed (${milliseconds(performance.now() - started)}).\n`,
    );
  }
  return failed.length ? exitStatus.machineFailed : exitStatus.ok;
}

/** A check as lines: ok or FAIL, the check, the machine, what; then each problem, indented. */
export function formatResult(result: CheckResult, width: number): string {
  const status = result.ok ? colors.green('ok  ') : colors.red('FAIL');
  const head = `${status}  ${result.check.padEnd(10)}  ${shownName(result.machine).padEnd(width)}  ${result.summary}\n`;
  return head + result.problems.map((problem) => `      ${describeProblem(problem)}\n`).join('');
}
