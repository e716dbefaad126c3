import { createServer, type Server } from 'node:http';
import { after } from 'node:test';

/** What the failed-unit monitor POSTs (layers/_/usr/local/libexec/homecloud/alert). */
export interface Alert {
  text: string;
  machine: string;
  unit: string;
  state: 'failed' | 'recovered' | 'dropped';
  journal: string;
  authorization?: string;
}

/**
 * A webhook receiver that keeps every alert POSTed to it. Make it at the top
 * of a test file (it closes when the file's tests end) and listen once the
 * sandbox's bridge is up: on its host address, which sandbox machines reach.
 */
export class WebhookReceiver {
  readonly alerts: Alert[] = [];
  url = '';
  private readonly server: Server;

  constructor() {
    this.server = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        try {
          this.alerts.push({ ...(JSON.parse(body) as Alert), authorization: request.headers.authorization });
          response.writeHead(204).end();
        } catch {
          response.writeHead(400).end();
        }
      });
    });
    after(() => new Promise<void>((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve())));
  }

  async listen(address: string): Promise<void> {
    await new Promise<void>((resolve, reject) => this.server.once('error', reject).listen(0, address, resolve));
    this.url = `http://${address}:${(this.server.address() as { port: number }).port}/alerts`;
  }

  /** The alerts about one unit, as "state machine" strings in arrival order. */
  about(unit: string): string[] {
    return this.alerts.filter((alert) => alert.unit === unit).map((alert) => `${alert.state} ${alert.machine}`);
  }

  /** Waits (at most `seconds`) until an alert matches; returns it, or undefined. */
  async waitFor(match: (alert: Alert) => boolean, seconds = 60): Promise<Alert | undefined> {
    const deadline = Date.now() + seconds * 1000;
    for (;;) {
      const found = this.alerts.find(match);
      if (found || Date.now() > deadline) return found;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
