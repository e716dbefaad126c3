import { HomecloudError, type Location } from '../load/errors.ts';
import { existsSync } from 'node:fs';
import { lazyChildProcess } from '../util/lazy.ts';
import { nativeRun } from '../util/native.ts';
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

export function m4Arguments(job: RenderJob, encoding: FactEncoding): string[] {
  return ['--prefix-builtins', '--fatal-warnings', ...encoding.defines, ...(job.publicDefines ?? []), ...job.preludes, job.template];
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
  const native = nativeRun(m4Program(), ['m4', ...m4Arguments(job, encoding)], env, job.cwd);
  if (!native) return renderWithNode(job, encoding);
  let result;
  try {
    result = await native;
  } catch (error) {
    throw spawnError(error as NodeJS.ErrnoException, job);
  }
  if (result.status === 0) return encoding.restore(result.stdout);
  const message = encoding.explain(result.stderr.toString('utf8').trim());
  throw renderError(message || `m4 ended with ${result.signal ? `signal ${result.signal}` : `exit status ${result.status}`}`, job.template);
}

function spawnError(error: NodeJS.ErrnoException, job: RenderJob): HomecloudError {
  return error.code === 'ENOENT'
    ? new HomecloudError('GNU m4 is not installed', { file: job.template }, 'install it: apt-get install m4')
    : new HomecloudError(`cannot run m4: ${error.message}`, { file: job.template });
}

/** The same with Node's spawn, when the native walker is not built. */
function renderWithNode(job: RenderJob, encoding: FactEncoding): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = lazyChildProcess().spawn('m4', m4Arguments(job, encoding), { cwd: job.cwd, env: { ...renderEnvironment, ...encoding.environment, HOME: job.cwd }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', (error: NodeJS.ErrnoException) => reject(spawnError(error, job)));
    child.on('close', (code, signal) => {
      if (code === 0) return resolve(encoding.restore(Buffer.concat(out)));
      const message = encoding.explain(Buffer.concat(err).toString('utf8').trim());
      reject(renderError(message || `m4 ended with ${signal ?? `exit status ${code}`}`, job.template));
    });
  });
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
