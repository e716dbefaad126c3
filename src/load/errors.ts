/** A place in a user's file that an error points at. */
export interface Location {
  file: string;
  line?: number;
  column?: number;
}

export function formatLocation(where: Location): string {
  let text = where.file;
  if (where.line !== undefined) text += `:${where.line}`;
  if (where.line !== undefined && where.column !== undefined) text += `:${where.column}`;
  return text;
}

/** Where a machine's work failed: the steps of a deploy, and the build before it. */
export const machinePhases = ['build', 'connect', 'lock', 'probe', 'fetch', 'plan', 'bootstrap', 'transfer', 'apply'] as const;
export type MachinePhase = (typeof machinePhases)[number];

/**
 * An error in the user's input or environment: one message that names the
 * place and says what to do; a machine's failure also says which machine and
 * in which phase. Anything else that escapes is a bug.
 */
export class HomecloudError extends Error {
  machine?: string;
  phase?: MachinePhase;

  constructor(
    message: string,
    readonly where?: Location,
    readonly hint?: string,
    about: { machine?: string; phase?: MachinePhase; cause?: unknown } = {},
  ) {
    super(message, about.cause === undefined ? undefined : { cause: about.cause });
    this.name = 'HomecloudError';
    this.machine = about.machine;
    this.phase = about.phase;
  }

  /** Say whose failure this is, where it does not say yet. */
  of(machine: string, phase?: MachinePhase): this {
    this.machine ??= machine;
    this.phase ??= phase;
    return this;
  }

  override toString(): string {
    const place = this.where ? `${formatLocation(this.where)}: ` : '';
    return place + this.message + (this.hint ? `\n  ${this.hint}` : '');
  }

  toJSON(): ErrorJson {
    return errorJson(this);
  }
}

/** The one shape of an error in every --json output. */
export interface ErrorJson {
  machine?: string;
  phase?: MachinePhase;
  message: string;
  file?: string;
  line?: number;
  column?: number;
  hint?: string;
}

export function errorJson(error: HomecloudError): ErrorJson {
  // Older call sites put the machine where a file belongs: it is no file.
  const where = error.where && !(error.where.file === error.machine && error.where.line === undefined) ? error.where : undefined;
  return { machine: error.machine, phase: error.phase, message: error.message, file: where?.file, line: where?.line, column: where?.column, hint: error.hint };
}

/**
 * Each command is bundled separately (scripts/bundle.mjs) with its own copy of
 * HomecloudError, so `instanceof` fails across bundles: recognise it by name too.
 */
export function isHomecloudError(error: unknown): error is HomecloudError {
  return error instanceof HomecloudError || (error instanceof Error && error.name === 'HomecloudError');
}

/** An error the system gave for a file or a process (ENOENT, EACCES, ENOSPC...): expected, unlike a TypeError or Node's ERR_ codes. */
export function isSystemError(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && /^E[A-Z0-9]+$/.test(String((error as NodeJS.ErrnoException).code));
}

/**
 * A machine's failure from what its work threw: a HomecloudError says whose it
 * is, a system error becomes one; anything else is a bug and is thrown again.
 */
export function machineFailure(error: unknown, machine: string, phase?: MachinePhase): HomecloudError {
  if (isHomecloudError(error)) return error.of(machine, phase);
  if (isSystemError(error))
    return new HomecloudError(describeSystemError(error), error.path ? { file: error.path } : undefined, undefined, { machine, phase, cause: error });
  throw error;
}

/** Node's errno codes in words a user understands. */
export function describeSystemError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ENOENT':
      return 'no such file or directory';
    case 'ELOOP':
      return 'too many levels of symbolic links (a link loop)';
    case 'EISDIR':
      return 'is a directory';
    case 'ENOTDIR':
      return 'a component of the path is not a directory';
    case 'EIO':
      return 'input/output error';
    default:
      return error instanceof Error ? error.message : String(error);
  }
}
