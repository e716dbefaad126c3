import { request as httpRequest } from 'node:http';
import type { TestSandbox } from './sandbox.ts';

/** A sandbox machine's address on its bridge. */
export function addressOf(box: TestSandbox, machine: string): string {
  const found = box.sandbox.list().find((m) => m.name === machine);
  if (!found) throw new Error(`${machine} is not a machine of this sandbox`);
  return found.address;
}

/**
 * One HTTP request from the host on a connection of its own (a kept-alive one could end at a
 * worker that a reload retires): status and body text. A refused connection is an error.
 */
export function request(url: string, options: { method?: string; body?: string } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const sent = httpRequest(url, { method: options.method ?? 'GET', agent: false, timeout: 30_000 }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      response.on('error', reject);
    });
    sent.on('timeout', () => sent.destroy(new Error(`no answer from ${url}`)));
    sent.on('error', reject);
    sent.end(options.body);
  });
}

/** Ask again until check says yes, for up to `seconds` (a machine may be slow: this waits, it does not measure). */
export async function eventually(what: string, check: () => boolean | Promise<boolean>, seconds = 30): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`still not so after ${seconds} s: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** `systemd-analyze security`'s overall exposure of a unit on a machine, e.g. 1.4. */
export function exposure(box: TestSandbox, machine: string, unit: string): number {
  const output = box.ssh(machine, `systemd-analyze security --no-pager ${unit} | tail -1`).stdout;
  const score = /exposure level for .*: (\d+\.\d+)/.exec(output);
  if (!score) throw new Error(`no exposure score for ${unit}: ${output}`);
  return Number(score[1]);
}

/**
 * A python web server of DIRECTORY on PORT, as a script to write on a machine: python's own `http.server` looks
 * its host name up first, which takes seconds where DNS answers nothing (a sandbox machine's container).
 */
export function quickWebServer(port: number, directory: string): string {
  return [
    'import functools, http.server, socketserver',
    'class Server(http.server.ThreadingHTTPServer):',
    '    def server_bind(self):',
    '        socketserver.TCPServer.server_bind(self)',
    `        self.server_name, self.server_port = "localhost", ${port}`,
    `Server(("0.0.0.0", ${port}), functools.partial(http.server.SimpleHTTPRequestHandler, directory=${JSON.stringify(directory)})).serve_forever()`,
    '',
  ].join('\n');
}
