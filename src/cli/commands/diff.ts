import { liveDiff } from '../../apply/diff.ts';
import { machineOutput } from '../../build/builder.ts';
import { factFiles } from '../../facts/machine-facts.ts';
import { readEnvFacts, secretValues } from '../../facts/facts.ts';
import { errorJson } from '../../load/errors.ts';
import { colors, exitStatus, printMachineError } from '../../report/output.ts';
import { acrossBuiltMachines } from '../machines.ts';
import type { GlobalOptions } from '../options.ts';

/** Unified diffs of every managed file whose live content is not what the build says: changes to come, and hand edits. */
export async function run(names: string[], options: GlobalOptions): Promise<number> {
  const { outcomes } = await acrossBuiltMachines(options, names, (target, { repo }) => {
    const env = factFiles(repo, target.machine).env;
    const secrets = secretValues(new Map(readEnvFacts(env, env, 'env').map((fact) => [fact.key, fact])));
    return liveDiff(target, machineOutput(repo, target.machine), secrets);
  });
  const results = outcomes.map(({ machine, value, error }) => ({ machine, diffs: value, error }));
  if (options.json) {
    process.stdout.write(
      JSON.stringify({ machines: results.map((r) => ({ machine: r.machine, diffs: r.diffs, error: r.error && errorJson(r.error) })) }) + '\n',
    );
  } else {
    for (const result of results) {
      if (result.error) printMachineError(result.machine, result.error);
      else if (result.diffs!.length === 0) process.stdout.write(`${colors.bold(result.machine)}: no differences\n`);
      else for (const diff of result.diffs!) process.stdout.write(`${colors.bold(`${result.machine} ${diff.path}`)}\n${colorize(diff.text)}\n`);
    }
  }
  return results.some((r) => r.error) ? exitStatus.machineFailed : exitStatus.ok;
}

function colorize(text: string): string {
  return text
    .split('\n')
    .map((line) =>
      line.startsWith('+') && !line.startsWith('+++')
        ? colors.green(line)
        : line.startsWith('-') && !line.startsWith('---')
          ? colors.red(line)
          : line.startsWith('@@')
            ? colors.cyan(line)
            : line,
    )
    .join('\n');
}
