import { printError } from '../report/output.ts';
import { exitWhenWritten } from './exit.ts';
import type { GlobalOptions } from './options.ts';
import { mark } from '../util/timing.ts';

export type Action = (args: string[], options: GlobalOptions & Record<string, unknown>) => Promise<number>;

/** Run a command's action and exit with its status once the output is written; an error is printed as the exit status says. */
export async function runAction(load: () => Promise<Action>, args: string[], options: GlobalOptions & Record<string, unknown>): Promise<void> {
  options.json ??= false;
  options.verbose ??= false;
  try {
    const action = await load();
    mark('command loaded');
    // Exit once the output is written, without waiting for the event loop to wind down (that costs milliseconds).
    await exitWhenWritten(await action(args, options));
  } catch (error) {
    process.exitCode = printError(error, options.json);
  }
}
