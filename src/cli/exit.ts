/** Ending the process without losing output. */

let exiting = false;

/**
 * A reader that went away (`homecloud ls | head -1`) fails writes with EPIPE:
 * the output ends there, quietly, instead of a crash with a stack trace.
 * Called first thing: the error comes on a later tick, whoever wrote.
 */
export function ignoreClosedPipes(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
    });
  }
}

/**
 * Exit once standard output and error have taken everything written to them.
 * Into a pipe Node writes what the pipe holds at once and the rest later:
 * process.exit alone cut `homecloud --json plan` at 64 KiB. A second call
 * while the first waits (a reader that never reads, and Ctrl-C again) exits at once.
 */
export async function exitWhenWritten(status: number): Promise<never> {
  if (!exiting) {
    exiting = true;
    await Promise.all([written(process.stdout), written(process.stderr)]);
  }
  process.exit(status);
}

/** Resolves when everything written to `stream` before is written out, or cannot be (the reader is gone). */
function written(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || !stream.writable) return resolve();
    // The callback comes after the writes before it, with or without an error.
    stream.write('', () => resolve());
  });
}
