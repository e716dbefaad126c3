import type { Manifest, ManifestEntries, ManifestEntry } from './manifest.ts';

/**
 * A manifest file as the builder writes it (JSON.stringify of the Manifest,
 * entries sorted), read without parsing it whole. When a build changes a few
 * files, each machine they touch looks up those entries and writes the file
 * again with them replaced: a fraction of parsing and writing its thousand or
 * more entries, which on a small machine costs milliseconds per machine.
 *
 * In that compact JSON a key starts right after `{` or `,`; inside a string
 * every `"` follows a backslash, so `,"<path>":{` is found only at the entry.
 */
export class ManifestText {
  private cursor = 0;

  constructor(readonly bytes: Buffer) {}

  /** The entry at `dest`, undefined when the manifest has none. */
  entry(dest: string): ManifestEntry | undefined {
    const span = this.find(dest);
    try {
      return span && (JSON.parse(this.bytes.toString('utf8', span[0], span[1])) as ManifestEntry);
    } catch {
      return undefined; // Not written by the builder: the build lays the machine out in full.
    }
  }

  /** Whether some entry's path starts with `prefix` (a directory's path and `/`). */
  hasPathUnder(prefix: string): boolean {
    const needle = Buffer.from(JSON.stringify(prefix).slice(0, -1));
    for (let at = this.bytes.indexOf(needle); at >= 0; at = this.bytes.indexOf(needle, at + 1)) {
      if (startsKey(this.bytes, at)) return true;
    }
    return false;
  }

  /** How many entries the manifest has. */
  count(): number {
    let count = 0;
    const needle = Buffer.from('":{"type":"');
    for (let at = this.bytes.indexOf(needle); at >= 0; at = this.bytes.indexOf(needle, at + needle.length)) count++;
    return count;
  }

  /**
   * The file with these entries' values replaced, byte for byte what
   * JSON.stringify of the manifest with them would give; undefined when one
   * of them is not in it (the caller then works on the parsed manifest).
   */
  withEntries(entries: ManifestEntries): Buffer | undefined {
    const spans: [start: number, end: number, value: Buffer][] = [];
    for (const [dest, entry] of Object.entries(entries)) {
      const span = this.find(dest);
      if (!span) return undefined;
      spans.push([span[0], span[1], Buffer.from(JSON.stringify(entry))]);
    }
    spans.sort((a, b) => a[0] - b[0]);
    const pieces: Buffer[] = [];
    let from = 0;
    for (const [start, end, value] of spans) {
      pieces.push(this.bytes.subarray(from, start), value);
      from = end;
    }
    pieces.push(this.bytes.subarray(from));
    return Buffer.concat(pieces);
  }

  /** The whole manifest, parsed. */
  parse(): Manifest {
    return JSON.parse(this.bytes.toString('utf8')) as Manifest;
  }

  /** The byte span of an entry's value. Lookups in path order (a source tree's) each search on from the last. */
  private find(dest: string): [start: number, end: number] | undefined {
    const needle = Buffer.from(`${JSON.stringify(dest)}:{`);
    const at = this.search(needle, this.cursor) ?? this.search(needle, 0);
    if (at === undefined) return undefined;
    const start = at + needle.length - 1;
    const end = valueEnd(this.bytes, start);
    if (end === undefined) return undefined;
    this.cursor = end;
    return [start, end];
  }

  private search(needle: Buffer, from: number): number | undefined {
    for (let at = this.bytes.indexOf(needle, from); at >= 0; at = this.bytes.indexOf(needle, at + 1)) {
      if (startsKey(this.bytes, at)) return at;
    }
    return undefined;
  }
}

const openBrace = 0x7b;
const closeBrace = 0x7d;
const comma = 0x2c;
const quote = 0x22;
const backslash = 0x5c;

/** Whether the `"` at `at` opens a key of the compact JSON. */
function startsKey(bytes: Buffer, at: number): boolean {
  return at > 0 && (bytes[at - 1] === comma || bytes[at - 1] === openBrace);
}

/** The end (exclusive) of the flat object that starts at `start`: its `}` outside strings. */
function valueEnd(bytes: Buffer, start: number): number | undefined {
  let inString = false;
  for (let i = start + 1; i < bytes.length; i++) {
    const byte = bytes[i];
    if (inString) {
      if (byte === backslash) i++;
      else if (byte === quote) inString = false;
    } else if (byte === quote) inString = true;
    else if (byte === closeBrace) return i + 1;
    else if (byte === openBrace) return undefined; // Not a manifest entry: entries are flat.
  }
  return undefined;
}
