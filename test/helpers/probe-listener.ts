// A listener for firewall tests: a socket-activated service on a sandbox machine that answers "probe <port>",
// and what a TCP connection from the host reads from it.
import { createConnection } from 'node:net';
import type { FixtureFile } from './repo.ts';

/** Files of layer `layer` for a TCP listener on `port` answering "probe <port>": only the input.d files decide who reaches it. */
export function probeListener(port: number, layer = 'probe'): Record<string, FixtureFile> {
  const sys = `layers/${layer}/usr/local/lib/systemd/system`;
  return {
    [`${sys}/probe-${port}.socket`]: `[Socket]\nListenStream=${port}\nAccept=yes\n`,
    [`${sys}/probe-${port}@.service`]: `[Service]\nExecStart=/bin/echo probe ${port}\nStandardOutput=socket\nDynamicUser=yes\n`,
    [`${sys}/sockets.target.wants/probe-${port}.socket`]: { link: `../probe-${port}.socket` },
  };
}

/** What a TCP connection from the host reads: the listener's line, "dropped" when nothing answers, or the error code (ECONNREFUSED). */
export function connectAndRead(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    const socket = createConnection({ host, port, timeout: 2000 });
    socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
    socket.on('end', () => resolve(data.trim()));
    socket.on('timeout', () => {
      socket.destroy();
      resolve('dropped');
    });
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
  });
}
