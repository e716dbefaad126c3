import type { RepoPaths } from '../load/repo.ts';
import { stampedUpToDate } from '../build/up-to-date.ts';
import { buildExitStatus, printBuildReport } from '../report/build-report.ts';
import type { OutputOptions } from '../report/output.ts';
import { noteCodePath } from '../util/code-paths.ts';
import { now } from '../util/timing.ts';

/**
 * A build of every machine when nothing the last build found them up to date with has changed: its report,
 * without loading the builder. The exit status, or undefined when the builder must look.
 */
export function stampedBuild(repo: RepoPaths, options: OutputOptions): number | undefined {
  const started = now();
  const machines = stampedUpToDate(repo);
  if (!machines) return undefined;
  noteCodePath('build:stamped');
  const report = {
    machines: machines.map((machine) => ({ machine, status: 'up-to-date' as const, written: 0, removed: 0, notes: [], milliseconds: 0 })),
    milliseconds: now() - started,
  };
  printBuildReport(report, options);
  return buildExitStatus(report);
}
