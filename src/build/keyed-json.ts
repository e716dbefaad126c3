import { readFileSync } from 'node:fs';
import { nativeRecords } from '../util/native.ts';

/** What the builder looks up in and changes of a file of records keyed by path. */
export interface KeyedRecords {
  /** The record under `key`, undefined when there is none (or it is not JSON). */
  get<T>(key: string): T | undefined;
  /** Whether some key starts with `prefix` (a directory's path and `/`). */
  hasKeyUnder(prefix: string): boolean;
  /** Where these records' values are and their new bytes; undefined when one of them is not there. */
  replacements(records: Record<string, unknown>): Replacement[] | undefined;
  /** The whole file with these replacements made. */
  replaced(replacements: Replacement[]): Buffer;
  /** These replacements, each of its record's length, were written into the file in place. */
  patched(replacements: Replacement[]): void;
  /** The file's bytes, when they are held in memory. */
  readonly held: Buffer | undefined;
}

/**
 * A JSON file as the builder writes it (JSON.stringify, no spaces) that keys
 * records by path, the manifest's entries and the render cache's records,
 * looked into without parsing it whole. When a build changes a few files,
 * each machine they touch looks up those records and writes only their bytes
 * again: a fraction of parsing and writing a thousand or more records, which
 * on a small machine costs milliseconds per machine.
 *
 * In that compact JSON a key starts right after `{` or `,`; inside a string
 * every `"` follows a backslash, so `,"<path>":` is found only at the record.
 */
export class KeyedJson implements KeyedRecords {
  private cursor = 0;

  constructor(readonly bytes: Buffer) {}

  get held(): Buffer {
    return this.bytes;
  }

  patched(replacements: Replacement[]): void {
    for (const { start, bytes } of replacements) bytes.copy(this.bytes, start);
  }

  /** The record under `key`, undefined when there is none (or it is not JSON). */
  get<T>(key: string): T | undefined {
    const span = this.find(key);
    try {
      return span && (JSON.parse(this.bytes.toString('utf8', span[0], span[1])) as T);
    } catch {
      return undefined;
    }
  }

  /** Whether some key starts with `prefix` (a directory's path and `/`). */
  hasKeyUnder(prefix: string): boolean {
    const needle = Buffer.from(prefixNeedle(prefix));
    for (let at = this.bytes.indexOf(needle); at >= 0; at = this.bytes.indexOf(needle, at + 1)) {
      if (startsKey(this.bytes, at)) return true;
    }
    return false;
  }

  /**
   * Where these records' values are and what replaces them, byte for byte
   * what JSON.stringify of the whole with them would give; undefined when one
   * of them is not there (the caller then works on the parsed whole).
   */
  replacements(records: Record<string, unknown>): Replacement[] | undefined {
    const found: Replacement[] = [];
    for (const [key, value] of Object.entries(records)) {
      const span = this.find(key);
      if (!span) return undefined;
      found.push({ start: span[0], end: span[1], bytes: Buffer.from(JSON.stringify(value)) });
    }
    return found.sort((a, b) => a.start - b.start);
  }

  /** The bytes with these replacements made. */
  replaced(replacements: Replacement[]): Buffer {
    const pieces: Buffer[] = [];
    let from = 0;
    for (const { start, end, bytes } of replacements) {
      pieces.push(this.bytes.subarray(from, start), bytes);
      from = end;
    }
    pieces.push(this.bytes.subarray(from));
    return Buffer.concat(pieces);
  }

  /** The byte span of a record's value. Lookups in key order (a source tree's) each search on from the last. */
  private find(key: string): [start: number, end: number] | undefined {
    const needle = Buffer.from(keyNeedle(key));
    // From the last record on, then what is before it: a key that is not there is searched for once, not twice.
    const at = this.search(needle, this.cursor, this.bytes) ?? (this.cursor > 0 ? this.search(needle, 0, this.bytes.subarray(0, this.cursor + needle.length - 1)) : undefined);
    if (at === undefined) return undefined;
    const start = at + needle.length;
    const end = valueEnd(this.bytes, start);
    if (end === undefined) return undefined;
    this.cursor = end;
    return [start, end];
  }

  /** The first key `needle` in `bytes` (the file or a start of it) from `from` on. */
  private search(needle: Buffer, from: number, bytes: Buffer): number | undefined {
    for (let at = bytes.indexOf(needle, from); at >= 0; at = bytes.indexOf(needle, at + 1)) {
      if (startsKey(this.bytes, at)) return at;
    }
    return undefined;
  }
}

/** Bytes `start` to `end` (exclusive) become `bytes`. */
export interface Replacement {
  start: number;
  end: number;
  bytes: Buffer;
}

/** The key as it starts its record in the compact JSON. */
function keyNeedle(key: string): string {
  return `${JSON.stringify(key)}:`;
}

/** How every key that starts with `prefix` begins. */
function prefixNeedle(prefix: string): string {
  return JSON.stringify(prefix).slice(0, -1);
}

const quote = 0x22;
const comma = 0x2c;
const backslash = 0x5c;
// [ { and ] }: compared as numbers, since this loop runs before the JIT compiles it.
const isOpener = (byte: number) => byte === 0x5b || byte === 0x7b;
const isCloser = (byte: number) => byte === 0x5d || byte === 0x7d;

/** Whether the `"` at `at` opens a key of the compact JSON. */
function startsKey(bytes: Buffer, at: number): boolean {
  return at > 0 && (bytes[at - 1] === comma || bytes[at - 1] === 0x7b);
}

/** The end (exclusive) of the object or array that starts at `start`. */
function valueEnd(bytes: Buffer, start: number): number | undefined {
  if (!isOpener(bytes[start]!)) return undefined;
  let depth = 0;
  let inString = false;
  for (let i = start; i < bytes.length; i++) {
    const byte = bytes[i]!;
    if (inString) {
      if (byte === backslash) i++;
      else if (byte === quote) inString = false;
    } else if (byte === quote) inString = true;
    else if (isOpener(byte)) depth++;
    else if (isCloser(byte) && --depth === 0) return i + 1;
  }
  return undefined;
}

/**
 * The same look-ups in a file left where it is: the native walker reads it
 * into a buffer of its own for each, so that a few records of a 162 KB
 * manifest do not cost reading it all into fresh memory (a page fault each
 * 4 KB, 15 to 20 us apiece on some virtual machines). What the native
 * walker cannot do (a file it cannot read, a key over 4 KB), and a whole
 * file rewritten, goes to a KeyedJson of the file's bytes.
 */
export class KeyedFile implements KeyedRecords {
  private whole: KeyedJson | undefined;

  private constructor(
    readonly path: string,
    private readonly native: NonNullable<ReturnType<typeof nativeRecords>>,
  ) {}

  /** A KeyedFile of the path, or undefined without the native walker's reader. */
  static of(path: string): KeyedFile | undefined {
    const native = nativeRecords();
    return native && new KeyedFile(path, native);
  }

  get held(): undefined {
    return undefined;
  }

  get<T>(key: string): T | undefined {
    const found = this.find([key]);
    if (!found) return this.inMemory().get<T>(key);
    try {
      return found[0] ? (JSON.parse(found[0][2]) as T) : undefined;
    } catch {
      return undefined;
    }
  }

  hasKeyUnder(prefix: string): boolean {
    return (this.whole ? undefined : this.native.keyStarts(this.path, prefixNeedle(prefix))) ?? this.inMemory().hasKeyUnder(prefix);
  }

  replacements(records: Record<string, unknown>): Replacement[] | undefined {
    const keys = Object.keys(records);
    const found = this.find(keys);
    if (!found) return this.inMemory().replacements(records);
    if (found.some((span) => span === null)) return undefined;
    return found.map((span, i) => ({ start: span![0], end: span![1], bytes: Buffer.from(JSON.stringify(records[keys[i]!])) })).sort((a, b) => a.start - b.start);
  }

  replaced(replacements: Replacement[]): Buffer {
    return this.inMemory().replaced(replacements);
  }

  patched(replacements: Replacement[]): void {
    this.whole?.patched(replacements);
  }

  /** The native reader's spans of these keys' records; undefined once the file is held whole, or when it cannot say. */
  private find(keys: string[]) {
    return this.whole ? undefined : this.native.findRecords(this.path, keys.map(keyNeedle));
  }

  private inMemory(): KeyedJson {
    if (!this.whole) {
      let bytes: Buffer;
      try {
        bytes = readFileSync(this.path);
      } catch {
        bytes = Buffer.alloc(0); // Gone or unreadable: no record is found, and the builder lays the machine out in full.
      }
      this.whole = new KeyedJson(bytes);
    }
    return this.whole;
  }
}
