import { readFileSync } from 'node:fs';
import { shellQuote } from './quote.ts';

/**
 * The text of a `.bash` file beside the module that names it, as
 * `bashFile(new URL('./apply.bash', import.meta.url))`: read on first use,
 * once per process. Under tsx the URL is the source's folder; in the bundle
 * import.meta.url is the dist file and scripts/bundle.mjs copies every .bash
 * file under src/ into dist/ (so their names are unique across src/).
 */
export function bashFile(url: URL): () => string {
  let text: string | undefined;
  return () => (text ??= readFileSync(url, 'utf8'));
}

/** A bash variable or array, the data a target script is given in front of its files. */
export type BashValue = string | number | readonly string[];

/** Bash assignments, one a line, each value quoted (numbers as they are). */
export function bashData(values: Record<string, BashValue>): string {
  return Object.entries(values)
    .map(
      ([name, value]) =>
        `${name}=${typeof value === 'number' ? value : typeof value === 'string' ? shellQuote(value) : `(${value.map(shellQuote).join(' ')})`}`,
    )
    .join('\n');
}

/** A target script: its data, then the text of its files in order (functions first, the main file last). */
export function targetScript(data: string, files: (() => string)[]): string {
  return [`${data}\n`, ...files.map((file) => file())].join('');
}
