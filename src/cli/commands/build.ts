import { buildExitStatus, printBuildReport } from '../../report/build-report.ts';
import { repoFrom } from '../context.ts';
import type { GlobalOptions } from '../options.ts';
import { stampedBuild } from '../stamped-build.ts';

export async function run(machines: string[], options: GlobalOptions & { rerender?: boolean }): Promise<number> {
  const repo = repoFrom(options);
  // Every machine, and nothing changed since the last build found them up to date: the builder is not loaded.
  // Its sources were being signed meanwhile (entry.ts), and those signatures go to the builder when it is.
  const stamped = machines.length === 0 && options.rerender !== true ? stampedBuild(repo, options) : undefined;
  if (stamped !== undefined) return stamped;
  const { Builder } = await import('../../build/builder.ts');
  const report = await new Builder(repo).build({ machines, rerender: options.rerender === true });
  printBuildReport(report, options);
  return buildExitStatus(report);
}
