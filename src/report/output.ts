import { createColors } from './colors.ts';
import { isTerminal, writeError, writeOut } from './stdio.ts';
import { errorJson, formatLocation, isHomecloudError, type HomecloudError } from '../load/errors.ts';
import { shownName } from '../load/names.ts';

/** Exit statuses: what failed, for scripts. */
export const exitStatus = {
  ok: 0,
  /** One or more machines failed; the others are done. */
  machineFailed: 1,
  /** The command could not start: bad input, bad usage, missing tools. */
  usage: 2,
  /** An unexpected exception: a bug in homecloud (EX_SOFTWARE). */
  bug: 70,
  interrupted: 130,
} as const;

export interface OutputOptions {
  json: boolean;
  verbose: boolean;
}

export const colors = createColors(isTerminal(1) && !('NO_COLOR' in process.env));
export const errorColors = createColors(isTerminal(2) && !('NO_COLOR' in process.env));

/**
 * Print what ended a command, and say the exit status it calls for: a
 * HomecloudError is the user's to fix (2); anything else is a bug, shown
 * with its stack (70).
 */
export function printError(error: unknown, json = false): number {
  if (isHomecloudError(error)) {
    writeError(`${errorColors.red('error:')} ${error.machine ? machineError(error.machine, error) : error.toString()}\n`);
    // With --json, a command that stopped before its own output says why in the one error shape, for the tool that reads it.
    if (json) writeOut(JSON.stringify({ error: errorJson(error) }) + '\n');
    return exitStatus.usage;
  }
  const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
  writeError(`${errorColors.red('error:')} ${text}\nthis is a bug in homecloud: please report it with the lines above\n`);
  if (json) writeOut(JSON.stringify({ error: { message: error instanceof Error ? error.message : String(error), bug: true } }) + '\n');
  return exitStatus.bug;
}

/**
 * A machine's failure on standard error, the one way every command prints
 * one: the machine, what was being done, the place, the message and the hint,
 * then the lines that say more (a unit's status and journal).
 */
export function printMachineError(machine: string, error: HomecloudError | undefined, more: { doing?: string; after?: (string | undefined)[] } = {}): void {
  const after = (more.after ?? []).filter((text): text is string => !!text);
  writeError(`${errorColors.red('error:')} ${machineError(machine, error, more.doing)}\n${after.map((text) => `${text}\n`).join('')}`);
}

/** Left-aligned columns, for plain tables. */
export function table(rows: string[][], header?: string[]): string {
  const all = header ? [header, ...rows] : rows;
  const widths = all[0]?.map((_, column) => Math.max(...all.map((row) => visibleLength(row[column] ?? '')))) ?? [];
  return all
    .map((row) =>
      row
        .map((cell, column) => (column === row.length - 1 ? cell : cell + ' '.repeat(widths[column]! - visibleLength(cell) + 2)))
        .join('')
        .trimEnd(),
    )
    .join('\n');
}

function visibleLength(text: string): number {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;]*m/g, '').length;
}

export function milliseconds(value: number): string {
  return value < 1000 ? `${Math.round(value)} ms` : `${(value / 1000).toFixed(1)} s`;
}

/** A machine's error in one line: the machine, what failed (`doing`), the file and line it points at (when that is not just the machine), the message, and the hint below. */
export function machineError(machine: string, error: HomecloudError | undefined, doing?: string): string {
  const shown = `${shownName(machine)}: ${doing ? `${doing}: ` : ''}`;
  if (!error) return `${shown}failed`;
  const place = error.where && error.where.file !== machine ? `${formatLocation(error.where)}: ` : '';
  return `${shown}${place}${error.message}${error.hint ? `\n  ${error.hint}` : ''}`;
}
