import { buildExitStatus, printBuildReport } from '../../report/build-report.ts';
import { repoFrom } from '../context.ts';
import type { GlobalOptions } from '../options.ts';

export async function run(machines: string[], options: GlobalOptions & { rerender?: boolean }): Promise<number> {
  const repo = repoFrom(options);
  // A plain build has its sources signing already (entry.ts); the builder signs what was not started.
  const { Builder } = await import('../../build/builder.ts');
  const report = await new Builder(repo).build({ machines, rerender: options.rerender === true });
  printBuildReport(report, options);
  return buildExitStatus(report);
}
