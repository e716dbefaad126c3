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

/**
 * An error in the user's input or environment: one message that names the
 * place and says what to do. Anything else that escapes is a bug.
 */
export class HomecloudError extends Error {
  constructor(
    message: string,
    readonly where?: Location,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'HomecloudError';
  }

  override toString(): string {
    const place = this.where ? `${formatLocation(this.where)}: ` : '';
    return place + this.message + (this.hint ? `\n  ${this.hint}` : '');
  }
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
