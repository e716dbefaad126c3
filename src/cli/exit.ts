/** Ending the process without losing output. */
import { madeStreams } from '../report/stdio.ts';

let exiting = false;

/**
 * Exit once standard output and error have taken everything written to them.
 * Into a pipe Node writes what the pipe holds at once and the rest later:
 * process.exit alone cut `homecloud --json plan` at 64 KiB. A second call
 * while the first waits (a reader that never reads, and Ctrl-C again) exits at once.
 */
export async function exitWhenWritten(status: number): Promise<never> {
  if (!exiting) {
    exiting = true;
    await Promise.all(madeStreams().map(written));
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
