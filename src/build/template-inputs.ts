import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { Facts } from '../facts/facts.ts';
import { statSignature } from '../util/fs.ts';
import { fingerprintOf, sha256 } from '../util/hash.ts';

/**
 * What a template's render depends on besides its own text, as make sees it:
 * the prelude, the files it includes (m4_include, m4_sinclude and
 * m4_undivert of a file, resolved from the repository root, m4's working
 * directory), and the facts it names, directly, through the prelude or an
 * included file, or through the value of a fact it names. A command's output
 * (m5_esyscmd) is taken to depend on these only; `build --rerender` renders
 * every template again for commands that read anything else.
 */
export interface TemplateInputs {
  /** Files read by m4, absolute, sorted. */
  includes: string[];
  /** Fact names read, set or not, sorted. */
  facts: string[];
  /** An include whose file name is worked out at render time: the template renders on every build. */
  computed: boolean;
}

const fileCall = /\bm4_(include|sinclude|undivert)\(([^)]*)\)/g;
const word = /[A-Za-z_][A-Za-z0-9_]*/g;
/** Fact-like names are read even when unset: setting one later changes the render. */
const factLike = /^ENV_[A-Za-z0-9_]*$/;
/** Deeper than this is an include loop; m4 fails on it anyway. */
const deepest = 16;

/** The words of a text that are facts or look like them. */
function factWords(text: string, facts: Facts, into: Set<string>): void {
  for (const name of wordsOf(text)) if (facts.has(name) || factLike.test(name)) into.add(name);
}

/** Distinct words of recent texts: every machine scans the same prelude, and a changed template once per machine. */
const wordLists = new Map<string, readonly string[]>();
const wordListsKept = 256;

function wordsOf(text: string): readonly string[] {
  let words = wordLists.get(text);
  if (!words) {
    words = [...new Set(text.match(word))];
    if (wordLists.size >= wordListsKept) wordLists.clear();
    wordLists.set(text, words);
  }
  return words;
}

/** The files a text names for m4 to read, and whether some name is made at render time. */
function fileNames(text: string, facts: Facts): { include: string[]; undivert: string[]; computed: boolean } {
  const found = { include: [] as string[], undivert: [] as string[], computed: false };
  for (const [, macro, argument] of text.matchAll(fileCall)) {
    for (const raw of macro === 'undivert' ? argument!.split(',') : [argument!]) {
      const name = unquoted(raw.trim());
      if (name === undefined || [...name.matchAll(word)].some(([w]) => facts.has(w) || /^m[45]_/.test(w))) {
        found.computed = true;
        continue;
      }
      // undivert with a number is a diversion, not a file.
      if (macro === 'undivert' && (name === '' || /^-?\d+$/.test(name))) continue;
      (macro === 'undivert' ? found.undivert : found.include).push(name);
    }
  }
  return found;
}

/** A literal file name: bare, or in one pair of quotes ([ ] after the prelude, ` ' before it); undefined when m4 would expand something in it. */
function unquoted(argument: string): string | undefined {
  const quoted = /^\[([^[\]]*)\]$/.exec(argument) ?? /^`([^`']*)'$/.exec(argument);
  if (quoted) return quoted[1]!;
  return /^[A-Za-z0-9_./+@%~ -]*$/.test(argument) ? argument : undefined;
}

/** The facts the prelude names: every template reads them (worked out once per machine). */
export function preludeFacts(preludeText: string, facts: Facts): Set<string> {
  const names = new Set<string>();
  factWords(preludeText, facts, names);
  return names;
}

/** What a template reads, from its text, the facts the prelude names and the machine's facts; `root` is m4's working directory. */
export function templateInputs(text: string, preludeNames: ReadonlySet<string>, facts: Facts, root: string): TemplateInputs {
  const includes = new Set<string>();
  const names = new Set(preludeNames);
  let computed = false;
  const scan = (source: string, depth: number) => {
    factWords(source, facts, names);
    const files = fileNames(source, facts);
    computed ||= files.computed;
    for (const name of files.undivert) includes.add(resolve(root, name));
    for (const name of files.include) {
      const path = isAbsolute(name) ? name : resolve(root, name);
      if (includes.has(path)) continue;
      includes.add(path);
      const included = readOrUndefined(path);
      if (included !== undefined && depth < deepest) scan(included, depth + 1);
    }
  };
  scan(text, 0);
  // A fact written in the repository is m4 text: the facts its value names are read too.
  const pending = [...names];
  while (pending.length) {
    const fact = facts.get(pending.pop()!);
    if (!fact) continue;
    const more = new Set<string>();
    factWords(fact.value, facts, more);
    for (const name of more) if (!names.has(name)) names.add(name), pending.push(name);
  }
  return { includes: [...includes].sort(), facts: [...names].sort(), computed };
}

function readOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return undefined;
  }
}

/** Content hashes of included files, valid while their stat signature holds (many templates share a fragment). */
const includeHashes = new Map<string, [signature: string, sha256: string]>();

function signature(path: string): string | undefined {
  try {
    return statSignature(statSync(path));
  } catch {
    return undefined;
  }
}

function includeHash(path: string): string {
  const signed = signature(path);
  if (signed === undefined) return 'missing';
  const known = includeHashes.get(path);
  if (known?.[0] === signed) return known[1];
  const text = readOrUndefined(path);
  const digest = text === undefined ? 'unreadable' : sha256(Buffer.from(text, 'latin1'));
  includeHashes.set(path, [signed, digest]);
  return digest;
}

/** A stat signature of each included file: part of a machine's build fingerprint, so that a changed fragment rebuilds it. */
export function includeSignatures(paths: readonly string[]): string {
  return paths.map((path) => `include ${path}=${signature(path) ?? 'missing'}`).join('\n');
}

/**
 * A template render's key: its content hash, then a fingerprint of
 * everything else it reads. The key holds while the content hash does and
 * nothing it reads changed; `environment` is what every template of the
 * machine shares (the prelude, and the names of facts that do not look like
 * facts, which a template may name before they are set).
 */
export function renderKey(contentHash: string, path: string, environment: string, inputs: Pick<TemplateInputs, 'includes' | 'facts'>, facts: Facts): string {
  const values = inputs.facts.map((name) => {
    const fact = facts.get(name);
    return fact ? `${name}=${fact.value}` : `${name}\0unset`;
  });
  const files = inputs.includes.map((include) => `${include}=${includeHash(include)}`);
  return `${contentHash}:${fingerprintOf([environment, path, ...values, '\0', ...files])}`;
}

/** What every template of a machine reads: the prelude's hashes, and the names of facts not named like ENV_*. */
export function renderEnvironment(preludeKey: string, facts: Facts): string {
  const unconventional = [...facts.keys()].filter((name) => !factLike.test(name)).sort();
  return fingerprintOf([preludeKey, ...unconventional]);
}

/** Whether a template's render (cached under `key`) is still good for `contentHash`: the cheap check when nothing but sources changed. */
export function sameContent(key: string, contentHash: string): boolean {
  return key.startsWith(`${contentHash}:`);
}
