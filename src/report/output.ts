import pc from 'picocolors';
import { HomecloudError, formatLocation } from '../load/errors.ts';
import { shownName } from '../load/names.ts';

/** Exit statuses: what failed, for scripts. */
export const exitStatus = {
  ok: 0,
  /** One or more machines failed; the others are done. */
  machineFailed: 1,
  /** The command could not start: bad input, bad usage, missing tools. */
  usage: 2,
  interrupted: 130,
} as const;

export interface OutputOptions {
  json: boolean;
  verbose: boolean;
}

export const colors = pc.createColors(process.stdout.isTTY === true && !('NO_COLOR' in process.env));
export const errorColors = pc.createColors(process.stderr.isTTY === true && !('NO_COLOR' in process.env));

export function printError(error: unknown): void {
  const text = isHomecloudError(error) ? error.toString() : error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.stderr.write(`${errorColors.red('error:')} ${text}\n`);
}

/**
 * Each command is bundled separately (scripts/bundle.mjs) with its own copy of
 * HomecloudError, so `instanceof` fails across bundles: recognise it by name too.
 */
function isHomecloudError(error: unknown): error is HomecloudError {
  return error instanceof HomecloudError || (error instanceof Error && error.name === 'HomecloudError');
}

/** Left-aligned columns, for plain tables. */
export function table(rows: string[][], header?: string[]): string {
  const all = header ? [header, ...rows] : rows;
  const widths = all[0]?.map((_, column) => Math.max(...all.map((row) => visibleLength(row[column] ?? '')))) ?? [];
  return all
    .map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell + ' '.repeat(widths[column]! - visibleLength(cell) + 2))).join('').trimEnd())
    .join('\n');
}

function visibleLength(text: string): number {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;]*m/g, '').length;
}

export function milliseconds(value: number): string {
  return value < 1000 ? `${Math.round(value)} ms` : `${(value / 1000).toFixed(1)} s`;
}

/** A machine's error in one line: the machine, then the file and line it points at (when that is not just the machine), the message, and the hint below. */
export function machineError(machine: string, error: HomecloudError | undefined, withHint = true): string {
  const shown = shownName(machine);
  if (!error) return `${shown}: failed`;
  const place = error.where && error.where.file !== machine ? `${formatLocation(error.where)}: ` : '';
  return `${shown}: ${place}${error.message}${withHint && error.hint ? `\n  ${error.hint}` : ''}`;
}
