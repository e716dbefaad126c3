import { createServer, type Server, type Socket } from 'node:net';
import { after } from 'node:test';

export interface Mail {
  from: string;
  to: string[];
  /** The message as sent: headers, a blank line, the body (CRLF line ends). */
  data: string;
}

/**
 * The smallest SMTP server a mail notifier can talk to: plain text, no
 * STARTTLS, no AUTH. It keeps every message and every command line it was
 * sent. Make it at the top of a test file (it closes when the file's tests
 * end) and listen once the sandbox's bridge is up.
 */
export class SmtpReceiver {
  readonly mails: Mail[] = [];
  readonly commands: string[] = [];
  url = '';
  private readonly server: Server;

  constructor() {
    this.server = createServer((socket) => this.converse(socket));
    after(() => new Promise<void>((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve())));
  }

  async listen(address: string): Promise<void> {
    await new Promise<void>((resolve, reject) => this.server.once('error', reject).listen(0, address, resolve));
    this.url = `smtp://${address}:${(this.server.address() as { port: number }).port}`;
  }

  private converse(socket: Socket): void {
    let buffer = '';
    let data: string | undefined;
    let mail: Mail = { from: '', to: [], data: '' };
    const reply = (line: string) => socket.write(`${line}\r\n`);
    reply('220 test SMTP');
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      for (let end = buffer.indexOf('\r\n'); end >= 0; end = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (data !== undefined) {
          if (line === '.') {
            this.mails.push({ ...mail, data });
            data = undefined;
            mail = { from: '', to: [], data: '' };
            reply('250 queued');
          } else data += `${line.startsWith('.') ? line.slice(1) : line}\r\n`;
          continue;
        }
        this.commands.push(line);
        const verb = line.split(' ')[0]!.toUpperCase();
        if (verb === 'EHLO' || verb === 'HELO') reply('250 test');
        else if (verb === 'MAIL') {
          mail.from = /<(.*)>/.exec(line)?.[1] ?? '';
          reply('250 ok');
        } else if (verb === 'RCPT') {
          mail.to.push(/<(.*)>/.exec(line)?.[1] ?? '');
          reply('250 ok');
        } else if (verb === 'DATA') {
          data = '';
          reply('354 go on');
        } else if (verb === 'QUIT') {
          reply('221 bye');
          socket.end();
        } else reply('502 not here');
      }
    });
    socket.on('error', () => socket.destroy());
  }
}
