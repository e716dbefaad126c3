import { connect } from 'node:net';
import { createServer, type Server } from 'node:tls';
import { after } from 'node:test';
import type { TestSandbox } from './sandbox.ts';

/**
 * TLS in front of a plain HTTP test server (a webhook receiver): an https://
 * URL that a sandbox machine trusts. The key and self-signed certificate are
 * made on the machine by its own openssl (the base image has it), and the
 * certificate joins the machine's CA store, which curl reads.
 */
export class TlsFront {
  url = '';
  private server?: Server;

  constructor() {
    after(() => new Promise<void>((resolve) => (this.server?.listening ? this.server.close(() => resolve()) : resolve())));
  }

  /** Listen on the plain server's address, for `machine`; resolves with the https:// URL of the same path. */
  async listen(box: TestSandbox, machine: string, plainUrl: string): Promise<string> {
    const plain = new URL(plainUrl);
    const address = plain.hostname;
    const certificate = '/usr/local/share/ca-certificates/homecloud-test.crt';
    const made = box.ssh(
      machine,
      `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=${address} -addext subjectAltName=IP:${address} -keyout /dev/stdout -out ${certificate} 2>/dev/null && update-ca-certificates >/dev/null 2>&1 && cat ${certificate}`,
    );
    const key = /-----BEGIN PRIVATE KEY-----[^]*?-----END PRIVATE KEY-----\n/.exec(made.stdout + '\n')?.[0];
    const cert = /-----BEGIN CERTIFICATE-----[^]*?-----END CERTIFICATE-----\n/.exec(made.stdout + '\n')?.[0];
    if (made.status !== 0 || !key || !cert) throw new Error(`no certificate made on ${machine}: ${made.stderr}`);
    const server = (this.server = createServer({ key, cert }, (socket) => {
      const upstream = connect(Number(plain.port), address);
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    }));
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, address, resolve));
    this.url = `https://${address}:${(server.address() as { port: number }).port}${plain.pathname}`;
    return this.url;
  }
}
