import { writeSync } from 'node:fs';
import { lazyTty } from '../util/lazy.ts';
import { nativeIsTerminal } from '../util/native.ts';

/**
 * Standard output and error. Node makes process.stdout and process.stderr on
 * first use, loading its stream modules (about 6 ms, a sixth of a build with
 * nothing to do). Once the command line has started watching them, a command
 * that only prints lines writes them to the file descriptor at once, and goes
 * through a stream only after some code made it, which keeps the order.
 */
const names = { 1: 'stdout', 2: 'stderr' } as const;
type Descriptor = keyof typeof names;

interface StdioState {
  watching: boolean;
  made: Set<Descriptor>;
  /** Descriptors whose reader went away: what is written to them is dropped. */
  closed: Set<Descriptor>;
}

// One state for the process: each command's bundle has its own copy of this module.
const shared = globalThis as typeof globalThis & { [key: symbol]: StdioState | undefined };
const key = Symbol.for('homecloud.stdio');
const state = (shared[key] ??= { watching: false, made: new Set(), closed: new Set() });
const { made, closed } = state;

/**
 * Called first thing by the command line: note each stream when some code
 * makes it, and let a reader that went away (`homecloud ls | head -1`) end
 * the output quietly instead of a crash with a stack trace.
 */
export function watchStandardStreams(): void {
  if (state.watching) return;
  state.watching = true;
  for (const fd of [1, 2] as const) {
    const name = names[fd];
    const property = Object.getOwnPropertyDescriptor(process, name);
    if (!property?.get || !property.configurable) {
      made.add(fd);
      ignoreClosedReader(process[name]);
      continue;
    }
    const make = property.get;
    Object.defineProperty(process, name, {
      configurable: true,
      enumerable: property.enumerable ?? true,
      get() {
        const stream = make.call(process) as NodeJS.WriteStream;
        made.add(fd);
        ignoreClosedReader(stream);
        Object.defineProperty(process, name, { configurable: true, enumerable: property.enumerable ?? true, value: stream, writable: false });
        return stream;
      },
    });
  }
}

function ignoreClosedReader(stream: NodeJS.WriteStream): void {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
}

/** The streams some code made (the ones to wait for before exiting). */
export function madeStreams(): NodeJS.WriteStream[] {
  if (!state.watching) return [process.stdout, process.stderr];
  return [...made].map((fd) => process[names[fd]]);
}

export function writeOut(text: string): void {
  write(1, text);
}

export function writeError(text: string): void {
  write(2, text);
}

function write(fd: Descriptor, text: string): void {
  if (!state.watching || made.has(fd)) {
    process[names[fd]].write(text);
    return;
  }
  if (closed.has(fd)) return;
  const bytes = Buffer.from(text);
  for (let offset = 0; offset < bytes.length;) {
    try {
      offset += writeSync(fd, bytes, offset);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // A descriptor left non-blocking by whoever passed it: wait a moment for the reader.
      if (code === 'EAGAIN') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
      else if (code === 'EPIPE') return void closed.add(fd);
      else throw error;
    }
  }
}

/** Whether a descriptor is a terminal, without making its stream (node:tty loads the network stack). */
export function isTerminal(fd: Descriptor): boolean {
  if (state.watching && made.has(fd)) return process[names[fd]].isTTY === true;
  return nativeIsTerminal(fd) ?? lazyTty().isatty(fd);
}
