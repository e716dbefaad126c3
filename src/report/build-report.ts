import type { BuildReport, MachineResult } from '../build/builder.ts';
import { shownName } from '../load/names.ts';
import { errorJson } from '../load/errors.ts';
import { writeOut } from './stdio.ts';
import { colors, exitStatus, milliseconds, printMachineError, type OutputOptions } from './output.ts';

/** What a build's report says: its machines' results and how long it took. */
type Outcome = Pick<BuildReport, 'machines' | 'milliseconds'>;

export function buildExitStatus(report: Outcome): number {
  return report.machines.some((m) => m.status === 'failed') ? exitStatus.machineFailed : exitStatus.ok;
}

export function printBuildReport(report: Outcome, options: OutputOptions): void {
  if (options.json) {
    writeOut(JSON.stringify(buildReportJson(report)) + '\n');
    return;
  }
  const lines: string[] = [];
  const width = Math.max(...report.machines.map((m) => shownName(m.machine).length));
  for (const result of report.machines) {
    if (result.status === 'up-to-date' && !options.verbose && report.machines.every((m) => m.status === 'up-to-date')) continue;
    lines.push(`${shownName(result.machine).padEnd(width)}  ${describe(result)}`);
    if (options.verbose) for (const note of result.notes) lines.push(`${' '.repeat(width)}  ${colors.dim(note)}`);
  }
  const failed = report.machines.filter((m) => m.status === 'failed');
  const built = report.machines.filter((m) => m.status === 'built');
  const total = report.machines.length;
  if (failed.length) lines.push(colors.red(`${failed.length} of ${total} machine${total === 1 ? '' : 's'} failed to build.`));
  else if (built.length === 0) lines.push(`${total === 1 ? 'The machine is' : `All ${total} machines are`} up to date (${milliseconds(report.milliseconds)}).`);
  else
    lines.push(
      `Built ${built.length} of ${total} machine${total === 1 ? '' : 's'} in ${milliseconds(report.milliseconds)}; the rest are up to date.`.replace(
        '; the rest are up to date',
        built.length === total ? '' : '; the rest are up to date',
      ),
    );
  writeOut(lines.join('\n') + '\n');
  for (const result of failed) printMachineError(result.machine, result.error);
}

function describe(result: MachineResult): string {
  switch (result.status) {
    case 'up-to-date':
      return colors.dim('up to date');
    case 'failed':
      return colors.red('failed');
    case 'built':
      return result.written === 0 && result.removed === 0
        ? `${colors.green('built')}: no output changed (${milliseconds(result.milliseconds)})`
        : `${colors.green('built')}: ${result.written} written, ${result.removed} removed (${milliseconds(result.milliseconds)})`;
  }
}

export function buildReportJson(report: Outcome) {
  return {
    milliseconds: Math.round(report.milliseconds),
    machines: report.machines.map((m) => ({
      machine: m.machine,
      status: m.status,
      ...(m.layout ? { layout: m.layout } : {}),
      written: m.written,
      removed: m.removed,
      ...(m.paths !== undefined ? { paths: m.paths } : {}),
      ...(m.error ? { error: errorJson(m.error.of(m.machine, 'build')) } : {}),
    })),
  };
}
