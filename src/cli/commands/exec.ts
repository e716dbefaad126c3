import pLimit from 'p-limit';
import { reachableTarget } from '../../transport/host-key.ts';
import { jobsFor } from '../context.ts';
import { HomecloudError, errorJson, isHomecloudError } from '../../load/errors.ts';
import { loadModel, selectMachines } from '../../load/model.ts';
import { colors, exitStatus, printMachineError } from '../../report/output.ts';
import { describeSshFailure, runScript } from '../../transport/ssh.ts';
import type { Target } from '../../transport/transport.ts';
import { repoFrom } from '../context.ts';
import type { GlobalOptions } from '../options.ts';

export async function run(args: string[], options: GlobalOptions): Promise<number> {
  const { names, command } = splitArguments(args, process.argv);
  if (command.length === 0 || names.length === 0) {
    throw new HomecloudError(
      'name machines, then -- and the command',
      undefined,
      'e.g. homecloud exec nas media -- systemctl --failed; machines whose names start with "-" after a -- of their own: homecloud exec -- -x -- uptime',
    );
  }
  const model = await loadModel(repoFrom(options));
  const machines = selectMachines(model, names);
  const limit = pLimit(jobsFor(options, model));
  const width = Math.max(...machines.map((m) => m.length));
  const results = await Promise.all(
    machines.map((machine) =>
      limit(async () => {
        let target: Target;
        try {
          target = await reachableTarget(model, machine);
        } catch (error) {
          if (!isHomecloudError(error)) throw error;
          error.of(machine, 'connect');
          if (!options.json) printMachineError(machine, error);
          return { machine, status: 255, stdout: '', stderr: error.message, error: errorJson(error) };
        }
        const result = await runScript(target, command.join(' '));
        const prefix = `${machine.padEnd(width)} | `;
        const lines = (text: string) => text.split('\n').filter((line, i, all) => line !== '' || i < all.length - 1);
        if (options.json) return { machine, status: result.status, stdout: result.stdout, stderr: result.stderr };
        for (const line of lines(result.stdout)) process.stdout.write(`${colors.dim(prefix)}${line}\n`);
        for (const line of lines(result.stderr)) process.stderr.write(`${colors.dim(prefix)}${line}\n`);
        if (result.status === 255) printMachineError(machine, new HomecloudError(describeSshFailure(target, result.stderr)).of(machine, 'connect'));
        else if (result.status !== 0) printMachineError(machine, new HomecloudError(`exit status ${result.status}`));
        return { machine, status: result.status };
      }),
    ),
  );
  if (options.json) process.stdout.write(JSON.stringify({ machines: results }) + '\n');
  return results.some((r) => r.status !== 0) ? exitStatus.machineFailed : exitStatus.ok;
}

/**
 * The machines and the command of `exec NAME... -- COMMAND`. `args` are the
 * operands commander found (it drops the first `--`, which ends the options).
 * When no machine came before that `--` (`exec -- -x -- uptime`, for machines
 * whose names start with "-"), the machines run to the next `--`.
 */
export function splitArguments(args: string[], argv: string[]): { names: string[]; command: string[] } {
  const dash = argv.indexOf('--');
  if (dash < 0) return { names: args, command: [] };
  const after = argv.slice(dash + 1);
  const before = args.length - after.length;
  if (before > 0) return { names: args.slice(0, before), command: after };
  const next = after.indexOf('--');
  return next < 0 ? { names: [], command: after } : { names: after.slice(0, next), command: after.slice(next + 1) };
}
