import { existsSync } from 'node:fs';
import { HomecloudError, isHomecloudError, isSystemError, type Location } from '../load/errors.ts';
import { nativeRun, type NativeRunResult } from '../util/native.ts';
import { lazyOs } from '../util/lazy.ts';
import { runProcess, type ProcessResult } from '../util/process.ts';
import type { Facts } from '../facts/facts.ts';
import { encodeFacts, type FactEncoding } from './literal-facts.ts';

export interface RenderJob {
  /** The repository root: m4's working directory. */
  cwd: string;
  /** Prelude files, read before the template. */
  preludes: string[];
  /** The template as m4 should name it in messages (relative to cwd when inside it). */
  template: string;
  facts: Facts;
  /** m4 definitions of the machines' public material (m5_public). */
  publicDefines?: string[];
}

/** The same environment for every render, so that a render depends only on its inputs. */
const renderEnvironment = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  LC_ALL: 'C.UTF-8',
  TZ: 'UTC',
};

/**
 * GNU m4 1.4.19 makes a symbol table of 65,537 buckets: the pages of that
 * half megabyte were half of each render's time on a small machine (4 ms of
 * 8). A template's macros, the prelude's and the facts are well served by
 * 4,093; the size changes how fast a name is found, never what it means.
 */
const hashSize = '--hashsize=4093';

export function m4Arguments(job: RenderJob, encoding: FactEncoding): string[] {
  return ['--prefix-builtins', '--fatal-warnings', hashSize, ...encoding.defines, ...(job.publicDefines ?? []), ...job.preludes, job.template];
}

let m4Path: string | undefined;

/** m4 as the render environment's PATH finds it (the native launcher searches only the caller's PATH). */
function m4Program(): string {
  return (m4Path ??= renderEnvironment.PATH.split(':').map((dir) => `${dir}/m4`).find((path) => existsSync(path)) ?? 'm4');
}

/** Render one template with GNU m4; any failure renders nothing and names file:line. */
export async function renderTemplate(job: RenderJob): Promise<Buffer> {
  // Secret and probe facts render literally; the encoding also maps m4's messages back (secrets by name).
  const encoding = encodeFacts(job.facts, job.cwd, [...job.preludes, job.template]);
  const env = { ...renderEnvironment, ...encoding.environment, HOME: job.cwd };
  const args = m4Arguments(job, encoding);
  let result: ProcessResult<Buffer>;
  try {
    const started = Date.now();
    const native = nativeRun(m4Program(), ['m4', ...args], env, job.cwd);
    // Without the native walker, Node spawns m4.
    result = native ? fromNative(['m4', ...args], await native, started) : await runProcess('m4', args, { cwd: job.cwd, env, binary: true, check: false });
  } catch (error) {
    throw startError(error, job);
  }
  if (result.status === 0) return encoding.restore(result.stdout);
  const message = encoding.explain(result.stderr.trim());
  throw renderError(message || `m4 ended with ${result.signal ? `signal ${result.signal}` : `exit status ${result.status}`}`, job.template);
}

/** m4 that could not start, said for templates: the process runner's error, or the native launcher's errno. */
function startError(error: unknown, job: RenderJob): HomecloudError {
  const cause = isHomecloudError(error) ? error.cause : error;
  if (!isSystemError(cause)) throw error;
  return cause.code === 'ENOENT'
    ? new HomecloudError('GNU m4 is not installed', { file: job.template }, 'install it: apt-get install m4')
    : new HomecloudError(`cannot run m4: ${cause.message}`, { file: job.template });
}

/** The native launcher's result as the process runner's (it gives the signal's number). */
function fromNative(command: string[], native: NativeRunResult, started: number): ProcessResult<Buffer> {
  // node:os (0.4 ms to load) only to name a signal.
  const signals: Partial<Record<NodeJS.Signals, number>> = native.signal ? lazyOs().constants.signals : {};
  const signal = (Object.keys(signals) as NodeJS.Signals[]).find((name) => signals[name] === native.signal) ?? null;
  return { command, status: native.signal ? 128 + native.signal : native.status, signal, stdout: native.stdout, stderr: native.stderr.toString('utf8'), milliseconds: Date.now() - started };
}

const locatedLine = /^(?:m4:)?(.+?):(\d+): (.*)$/s;

/** m4's own message, with its `file:line` turned into the error's location. */
function renderError(message: string, template: string): HomecloudError {
  const lines = message.split('\n').filter((line) => line.trim() !== '');
  const first = lines[0] ?? message;
  const match = locatedLine.exec(first);
  const where: Location = match ? { file: match[1]!, line: Number(match[2]) } : { file: template };
  const text = [match ? match[3]! : first, ...lines.slice(1)].join('\n  ').replace(/^ERROR: /, '');
  return new HomecloudError(text, where);
}
