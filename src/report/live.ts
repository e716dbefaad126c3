/**
 * A block of lines, one per machine, redrawn in place on a terminal: the
 * live view of a command running on many machines at once.
 */
export class LiveLines {
  private drawn = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly stream: NodeJS.WriteStream,
    /** Called at every redraw (elapsed times tick); the number of lines stays the same. */
    private readonly render: () => string[],
  ) {}

  start(): void {
    this.draw();
    this.timer = setInterval(() => this.draw(), 100);
  }

  /** Draw once more, whole (long lines may wrap now: nothing is redrawn after), then leave the lines as they are. */
  stop(): void {
    clearInterval(this.timer);
    this.draw(Infinity);
  }

  /** Lines are cut to the terminal's width: a wrapped line would break moving back up over them. */
  private draw(width = (this.stream.columns || 80) - 1): void {
    const lines = this.render();
    let out = this.drawn ? `\u001b[${this.drawn}A` : '';
    for (const line of lines) out += `\r\u001b[2K${fit(line, width)}\n`;
    this.drawn = lines.length;
    this.stream.write(out);
  }
}

/** Cut a line with colour codes to a visible width. */
function fit(line: string, width: number): string {
  let visible = 0;
  let out = '';
  for (let i = 0; i < line.length; i++) {
    if (line[i] === '\u001b') {
      const end = line.indexOf('m', i);
      out += line.slice(i, end + 1);
      i = end;
    } else if (visible < width) {
      out += line[i];
      visible++;
    }
  }
  return out + (visible >= width && width !== Infinity ? '\u001b[0m' : '');
}
