import { Builder } from '../../build/builder.ts';
import { buildExitStatus, printBuildReport } from '../../report/build-report.ts';
import { repoFrom } from '../context.ts';
import type { GlobalOptions } from '../main.ts';

export async function run(machines: string[], options: GlobalOptions): Promise<number> {
  const report = await new Builder(repoFrom(options)).build({ machines });
  printBuildReport(report, options);
  return buildExitStatus(report);
}
