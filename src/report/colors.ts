/** The ANSI styles homecloud's output uses, on or off (on when the output is a terminal and NO_COLOR is unset). */
export interface Colors {
  bold(text: string): string;
  dim(text: string): string;
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
  cyan(text: string): string;
}

/** [open, close, what a nested close is replaced with so that the outer style goes on]. */
const styles: Record<keyof Colors, [string, string, string]> = {
  bold: ['\x1b[1m', '\x1b[22m', '\x1b[22m\x1b[1m'],
  dim: ['\x1b[2m', '\x1b[22m', '\x1b[22m\x1b[2m'],
  red: ['\x1b[31m', '\x1b[39m', '\x1b[31m'],
  green: ['\x1b[32m', '\x1b[39m', '\x1b[32m'],
  yellow: ['\x1b[33m', '\x1b[39m', '\x1b[33m'],
  cyan: ['\x1b[36m', '\x1b[39m', '\x1b[36m'],
};

function style([open, close, reopen]: [string, string, string]): (text: string) => string {
  return (text) => open + String(text).split(close).join(reopen) + close;
}

const plain = (text: string) => String(text);

export function createColors(enabled: boolean): Colors {
  const entries = Object.entries(styles).map(([name, codes]) => [name, enabled ? style(codes) : plain]);
  return Object.fromEntries(entries) as unknown as Colors;
}
