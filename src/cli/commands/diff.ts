import pLimit from 'p-limit';
import { liveDiff, type FileDiff } from '../../apply/diff.ts';
import { Builder, machineOutput } from '../../build/builder.ts';
import { factFiles } from '../../facts/machine-facts.ts';
import { readEnvFacts, secretValues } from '../../facts/facts.ts';
import { HomecloudError } from '../../load/errors.ts';
import { inventoryEntry, loadModel, sandboxProblem } from '../../load/model.ts';
import { colors, exitStatus } from '../../report/output.ts';
import { repoFrom } from '../context.ts';
import type { GlobalOptions } from '../main.ts';

/** Unified diffs of every managed file whose live content is not what the build says: changes to come, and hand edits. */
export async function run(names: string[], options: GlobalOptions): Promise<number> {
  const repo = repoFrom(options);
  const report = await new Builder(repo).build({ machines: names });
  const model = await loadModel(repo);
  const limit = pLimit(model.settings.jobs);
  const results = await Promise.all(
    report.machines.map((built) =>
      limit(async (): Promise<{ machine: string; diffs?: FileDiff[]; error?: HomecloudError }> => {
        if (built.status === 'failed') return { machine: built.machine, error: built.error };
        const problem = sandboxProblem(model, built.machine);
        if (problem) return { machine: built.machine, error: problem };
        const env = factFiles(repo, built.machine).env;
        const secrets = secretValues(new Map(readEnvFacts(env, env, 'env').map((fact) => [fact.key, fact])));
        try {
          return { machine: built.machine, diffs: await liveDiff({ machine: built.machine, entry: inventoryEntry(model, built.machine) }, machineOutput(repo, built.machine), secrets) };
        } catch (error) {
          return { machine: built.machine, error: error instanceof HomecloudError ? error : new HomecloudError(String(error)) };
        }
      }),
    ),
  );
  if (options.json) {
    process.stdout.write(JSON.stringify({ machines: results.map((r) => ({ machine: r.machine, diffs: r.diffs, error: r.error?.toString() })) }) + '\n');
  } else {
    for (const result of results) {
      if (result.error) process.stderr.write(`${colors.red('error:')} ${result.machine}: ${result.error.message}\n`);
      else if (result.diffs!.length === 0) process.stdout.write(`${colors.bold(result.machine)}: no differences\n`);
      else for (const diff of result.diffs!) process.stdout.write(`${colors.bold(`${result.machine} ${diff.path}`)}\n${colorize(diff.text)}\n`);
    }
  }
  return results.some((r) => r.error) ? exitStatus.machineFailed : exitStatus.ok;
}

function colorize(text: string): string {
  return text
    .split('\n')
    .map((line) => (line.startsWith('+') && !line.startsWith('+++') ? colors.green(line) : line.startsWith('-') && !line.startsWith('---') ? colors.red(line) : line.startsWith('@@') ? colors.cyan(line) : line))
    .join('\n');
}
