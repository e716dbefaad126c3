import { HomecloudError } from '../load/errors.ts';
import { lazyChildProcess, lazyOs } from './lazy.ts';
import { shellWord } from './quote.ts';

/** How a program ran: every way of running one gives this. */
export interface ProcessResult<Output extends string | Buffer = string> {
  /** The program and its arguments, as run. */
  command: string[];
  /** The exit status; 128 + the signal's number when a signal ended it, as a shell says. */
  status: number;
  signal: NodeJS.Signals | null;
  stdout: Output;
  stderr: string;
  milliseconds: number;
}

export interface ProcessOptions {
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Milliseconds before the program is killed. */
  timeout?: number;
  /**
   * A non-zero exit throws a HomecloudError naming the command and its last
   * lines (the default); false makes failure a value the caller reads.
   * Either way a program that cannot start throws.
   */
  check?: boolean;
}

export interface SyncProcessOptions extends ProcessOptions {
  /** On this terminal: the program reads and writes ours (the result's outputs are then empty). */
  interactive?: boolean;
}

export interface AsyncProcessOptions extends ProcessOptions {
  /** Ends the program (SIGTERM); the result then says so in `signal`. */
  signal?: AbortSignal;
  /** Hears each line of standard output as it arrives. */
  onLine?: (line: string) => void;
}

/** Run a program to its end. */
export function runProcess(program: string, args: string[], options: AsyncProcessOptions & { binary: true }): Promise<ProcessResult<Buffer>>;
export function runProcess(program: string, args: string[], options?: AsyncProcessOptions): Promise<ProcessResult>;
export async function runProcess(
  program: string,
  args: string[],
  options: AsyncProcessOptions & { binary?: boolean } = {},
): Promise<ProcessResult<string | Buffer>> {
  const out: Buffer[] = [];
  const lines = options.onLine && lineSplitter(options.onLine);
  const { child, done } = start(program, args, options, (chunk) => {
    out.push(chunk);
    lines?.push(chunk);
  });
  child.stdin.end(options.input ?? '');
  const ended = await done;
  const stdout = Buffer.concat(out);
  return checked({ ...ended, stdout: options.binary ? stdout : stdout.toString('utf8') }, options.check);
}

/** Run a program to its end, blocking (the sandbox's setup, diff, an interactive ssh). */
export function runProcessSync(program: string, args: string[], options: SyncProcessOptions = {}): ProcessResult {
  const started = Date.now();
  const ran = lazyChildProcess().spawnSync(program, args, {
    input: options.input,
    env: options.env ?? process.env,
    cwd: options.cwd,
    encoding: 'utf8',
    timeout: options.timeout,
    maxBuffer: 64 << 20,
    stdio: options.interactive ? 'inherit' : 'pipe',
  });
  if (ran.error) throw startFailure(program, ran.error);
  const result = {
    command: [program, ...args],
    status: statusOf(ran.status, ran.signal),
    signal: ran.signal,
    stdout: ran.stdout ?? '',
    stderr: ran.stderr ?? '',
    milliseconds: Date.now() - started,
  };
  return checked(result, options.check);
}

/** A non-zero exit as an error: the command, how it ended, and the last lines it wrote. */
export function processFailure(result: ProcessResult<string | Buffer>): HomecloudError {
  const output = (result.stderr || result.stdout.toString()).trim().split('\n').slice(-5).join('\n  ');
  const ended = result.signal ? `signal ${result.signal}` : `exit status ${result.status}`;
  return new HomecloudError(`${result.command.map(shellWord).join(' ')} failed (${ended})${output ? `:\n  ${output}` : ''}`);
}

function checked<R extends ProcessResult<string | Buffer>>(result: R, check = true): R {
  if (check && result.status !== 0) throw processFailure(result);
  return result;
}

/** A program that cannot start: missing, or not executable. */
function startFailure(program: string, error: NodeJS.ErrnoException): HomecloudError {
  return new HomecloudError(error.code === 'ENOENT' ? `${program} is not installed` : `cannot run ${program}: ${error.message}`, undefined, undefined, {
    cause: error,
  });
}

function statusOf(code: number | null, signal: NodeJS.Signals | null): number {
  return code ?? 128 + (signal ? (lazyOs().constants.signals[signal] ?? 0) : 0);
}

/**
 * A program that keeps running while we talk to it: its output is read line
 * by line, and its standard input stays open until `end`.
 */
export interface ProcessSession {
  /** The next line of standard output, or undefined once it has ended. */
  nextLine(): Promise<string | undefined>;
  /** Lines from now on go to this listener (and no longer to nextLine); lines already read but not taken go first. */
  follow(onLine: (line: string) => void): void;
  write(data: string | Buffer): void;
  /** End standard input, after `data`. */
  end(data?: string | Buffer): void;
  /** How it ended; stdout holds only what followed the last whole line. */
  readonly done: Promise<ProcessResult>;
}

/** Start a program; `done` rejects when it cannot start. */
export function openProcess(program: string, args: string[], options: AsyncProcessOptions = {}): ProcessSession {
  const lines: string[] = [];
  const waiting: ((line: string | undefined) => void)[] = [];
  let ended = false;
  let listener: ((line: string) => void) | undefined;
  const splitter = lineSplitter((line) => {
    if (listener) listener(line);
    else if (waiting.length) waiting.shift()!(line);
    else lines.push(line);
  });
  const { child, done } = start(program, args, options, (chunk) => splitter.push(chunk));
  const finished = done
    .finally(() => {
      ended = true;
      for (const wake of waiting.splice(0)) wake(undefined);
    })
    .then((result): ProcessResult => ({ ...result, stdout: splitter.rest() }));
  // Not every caller waits for `done` before it has read what it wanted.
  finished.catch(() => {});
  const open = () => !child.stdin.destroyed && !child.stdin.writableEnded;
  return {
    nextLine: () => (lines.length ? Promise.resolve(lines.shift()) : ended ? Promise.resolve(undefined) : new Promise((wake) => waiting.push(wake))),
    follow: (onLine) => {
      listener = onLine;
      for (const line of lines.splice(0)) onLine(line);
    },
    write: (data) => {
      if (open()) child.stdin.write(data);
    },
    end: (data) => {
      if (open()) child.stdin.end(data ?? '');
    },
    done: finished,
  };
}

/** Spawn a program, standard output to `onStdout`; `done` says how it ended (everything but its standard output). */
function start(program: string, args: string[], options: AsyncProcessOptions, onStdout: (chunk: Buffer) => void) {
  const started = Date.now();
  const child = lazyChildProcess().spawn(program, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: options.env ?? process.env,
    cwd: options.cwd,
    signal: options.signal,
    timeout: options.timeout,
  });
  const err: Buffer[] = [];
  child.stdout.on('data', onStdout);
  child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
  // A program that exits without reading all its input: what it did not read is of no matter.
  child.stdin.on('error', () => {});
  const done = new Promise<Omit<ProcessResult, 'stdout'>>((resolve, reject) => {
    // An abort or a timeout kills a started program: 'close' follows and says how it ended.
    child.on('error', (error: NodeJS.ErrnoException) => child.pid === undefined && reject(startFailure(program, error)));
    child.on('close', (code, signal) =>
      resolve({
        command: [program, ...args],
        status: statusOf(code, signal),
        signal,
        stderr: Buffer.concat(err).toString('utf8'),
        milliseconds: Date.now() - started,
      }),
    );
  });
  return { child, done };
}

/** Whole lines from chunks of output; a line of megabytes (a base64 manifest) costs no more than its bytes. */
function lineSplitter(onLine: (line: string) => void) {
  let pending: Buffer[] = [];
  return {
    push(chunk: Buffer) {
      let start = 0;
      for (let newline = chunk.indexOf(10); newline >= 0; newline = chunk.indexOf(10, start)) {
        pending.push(chunk.subarray(start, newline));
        onLine(Buffer.concat(pending).toString('utf8'));
        pending = [];
        start = newline + 1;
      }
      if (start < chunk.length) pending.push(chunk.subarray(start));
    },
    rest: () => Buffer.concat(pending).toString('utf8'),
  };
}
