/**
 * Secret facts (facts/<m>.env) and probe facts (read from a managed machine)
 * are data, never m4 code: a password hash keeps its `$2`, and a value a
 * machine reports cannot run commands on the operator's host at the next
 * build. Facts written in the repository stay m4 text, as in the original.
 *
 * Such a fact's macro expands to `m4_defn(<hidden name>)`: m4_defn returns
 * the raw definition quoted and without `$n` substitution. The hidden name is
 * made of Unicode noncharacters, so no template can name or rescan it. A
 * value that m4 could still misread (a quote, `$`, `,`, a parenthesis, a
 * macro name, ...) once a macro strips its quotes (m5_for, m5_clamp) enters
 * m4 as a placeholder, U+FDD0 index U+FDD1, put back after the render.
 * Plain values (`debian`, `3`) enter as they are, so comparisons and
 * m4_eval keep working.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { HomecloudError } from '../load/errors.ts';
import { secretValues, type Fact, type Facts } from '../facts/facts.ts';

const open = '\uFDD0';
const close = '\uFDD1';
const hiddenOpen = '\uFDD2';
const hiddenClose = '\uFDD3';
/** The noncharacters homecloud keeps for itself: a literal fact may not hold them. */
const reserved = /[\uFDD0-\uFDEF]/;
const openBytes = Buffer.from(open);
const closeBytes = Buffer.from(close);

/** Whether a fact renders literally rather than as m4 text. */
function isLiteral(fact: Fact): boolean {
  return fact.origin === 'env' || fact.origin === 'probe';
}

export interface FactEncoding {
  /** The m4 `-D` arguments that define every fact. */
  defines: string[];
  /** The values behind placeholders, for m5_esyscmd to put into its command and take out of its output: HOMECLOUD_LITERAL_<index>, and HOMECLOUD_LITERALS. */
  environment: Record<string, string>;
  /** m4's output with every placeholder replaced by its value. */
  restore(output: Buffer): Buffer;
  /** m4's message with placeholders replaced (a secret by its name) and secret values named, not shown. */
  explain(message: string): string;
}

/** What in the m4 input can make text m4 code: macro names, and the quote and comment settings. */
interface Syntax {
  names: Set<string>;
  unsafe: RegExp;
}

const word = /[A-Za-z_][A-Za-z0-9_]*/g;
const defined = /m4_(?:define|pushdef)\(\s*[[`]?([A-Za-z_][A-Za-z0-9_]*)/g;
/** Always unsafe: the prelude's quotes, `$n` (m5_for defines each item as a macro), argument syntax, control characters. */
const unsafeAlways = '[\\][$,()\\x00-\\x1f\\x7f';

/**
 * The standard prelude quotes with [ ] and turns comments off; for anything
 * else the default quotes ` ' and comment # are unsafe too, and quotes or
 * comments of its own leave only a short list of characters safe.
 */
function syntaxOf(texts: string[]): Syntax {
  const all = texts.join('\n');
  const names = new Set([...all.matchAll(defined)].map((match) => match[1]!));
  const quotes = [...all.matchAll(/m4_changequote\b(\([^)]*\))?/g)].map((match) => match[1] ?? '');
  const comments = [...all.matchAll(/m4_changecom\b(\([^)]*\))?/g)].map((match) => match[1] ?? '');
  const bracketQuotes = quotes.length > 0 && quotes.every((args) => args === '([,])');
  const commentsOff = comments.length > 0 && comments.every((args) => args === '()' || args === '');
  if ((!bracketQuotes && quotes.length > 0) || (!commentsOff && comments.length > 0)) {
    return { names, unsafe: /[^A-Za-z0-9 _.:/@=+%~^-]/ };
  }
  const extra = (bracketQuotes ? '' : "`'") + (commentsOff ? '' : '#');
  return { names, unsafe: new RegExp(`[${unsafeAlways}${extra}]`) };
}

function isPlain(value: string, syntax: Syntax, facts: Facts): boolean {
  if (syntax.unsafe.test(value)) return false;
  for (const [name] of value.matchAll(word)) {
    if (/^m[45]_/.test(name) || facts.has(name) || syntax.names.has(name)) return false;
  }
  return true;
}

/**
 * The facts as m4 definitions, for a render with these prelude files and
 * template (paths relative to cwd): their macro definitions and quote and
 * comment settings decide what m4 could misread.
 */
export function encodeFacts(facts: Facts, cwd: string, inputs: string[]): FactEncoding {
  // Read only for a literal fact: most renders have none, and need not read their inputs twice.
  let syntax: Syntax | undefined;
  const inputSyntax = () =>
    (syntax ??= syntaxOf(
      inputs.map((path) => {
        try {
          return readFileSync(isAbsolute(path) ? path : join(cwd, path), 'latin1');
        } catch {
          return ''; // m4 reports an unreadable input itself.
        }
      }),
    ));
  const defines: string[] = [];
  const literals: Fact[] = [];
  const placeheld = new Map<number, Fact>();
  for (const fact of facts.values()) {
    if (!isLiteral(fact) || fact.value === '') {
      // An empty literal stays empty, so that m5_or gives its default.
      defines.push(`-D${fact.key}=${fact.value}`);
      continue;
    }
    if (reserved.test(fact.value)) {
      throw new HomecloudError(
        `the value of ${fact.key} holds a Unicode noncharacter (U+FDD0 to U+FDEF), which homecloud uses to keep facts literal`,
        fact.file ? { file: fact.file, line: fact.line } : undefined,
        'remove that character from the value',
      );
    }
    const index = literals.push(fact) - 1;
    const hidden = `${hiddenOpen}${index}${hiddenClose}`;
    const plain = isPlain(fact.value, inputSyntax(), facts);
    if (!plain) placeheld.set(index, fact);
    defines.push(`-D${hidden}=${plain ? fact.value : `${open}${index}${close}`}`, `-D${fact.key}=m4_defn(${hidden})`);
  }
  return {
    defines,
    environment: literalEnvironment(placeheld),
    restore: (output) => restore(output, placeheld),
    explain: (message) =>
      maskSecretText(
        message
          .replace(/\uFDD0(\d+)\uFDD1/g, (text, index: string) => {
            const fact = placeheld.get(Number(index));
            return fact ? (fact.secret ? secretLabel(fact.key) : fact.value) : text;
          })
          .replace(/\uFDD2(\d+)\uFDD3/g, (text, index: string) => literals[Number(index)]?.key ?? text),
        facts,
      ),
  };
}

/** The values behind placeholders for m5_esyscmd, and their order, longest first (a value inside another is put back after it). */
function literalEnvironment(placeheld: Map<number, Fact>): Record<string, string> {
  if (placeheld.size === 0) return {};
  const order = [...placeheld].sort(([, a], [, b]) => b.value.length - a.value.length).map(([index]) => index);
  return { HOMECLOUD_LITERALS: order.join(' '), ...Object.fromEntries([...placeheld].map(([index, fact]) => [`HOMECLOUD_LITERAL_${index}`, fact.value])) };
}

/** Put the values back for their placeholders, byte-exact: the output need not be UTF-8. */
function restore(output: Buffer, placeheld: Map<number, Fact>): Buffer {
  let at = output.indexOf(openBytes);
  if (at < 0 || placeheld.size === 0) return output;
  const parts: Buffer[] = [];
  let from = 0;
  while (at >= 0) {
    const end = output.indexOf(closeBytes, at + openBytes.length);
    const digits = end < 0 ? '' : output.toString('latin1', at + openBytes.length, end);
    const fact = /^\d{1,9}$/.test(digits) ? placeheld.get(Number(digits)) : undefined;
    if (fact) {
      parts.push(output.subarray(from, at), Buffer.from(fact.value, 'utf8'));
      from = end + closeBytes.length;
    }
    at = output.indexOf(openBytes, fact ? from : at + openBytes.length);
  }
  parts.push(output.subarray(from));
  return Buffer.concat(parts);
}

const secretLabel = (key: string) => `<secret ${key}>`;
const labelPattern = '<secret [A-Za-z_][A-Za-z0-9_]*>';

/** Per facts: what to hide (each secret value and its pieces) and the fact each names. */
const masks = new WeakMap<Facts, { pattern?: RegExp; keys: Map<string, string> }>();

function secretsOf(facts: Facts) {
  let known = masks.get(facts);
  if (known) return known;
  const keys = new Map<string, string>();
  const secrets = [...facts.values()].filter((fact) => fact.secret && fact.value !== '').sort((a, b) => b.value.length - a.value.length);
  for (const fact of secrets) if (!keys.has(fact.value)) keys.set(fact.value, fact.key);
  // m4 can show pieces of a value apart (its arguments, words of an expression): hide those of 2 characters or more too.
  for (const fact of secrets) {
    for (const piece of fact.value.split(/[\s,]+/)) if (piece.length >= 2 && !keys.has(piece)) keys.set(piece, fact.key);
  }
  const texts = [...keys.keys()].sort((a, b) => b.length - a.length);
  const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  // A label already there stays as it is, so masking twice changes nothing.
  const pattern = texts.length > 0 ? new RegExp([labelPattern, ...texts.map(escape)].join('|'), 'g') : undefined;
  known = { pattern, keys };
  masks.set(facts, known);
  return known;
}

/** The text with every secret value, and every piece of one, replaced by the name of its fact. */
export function maskSecretText(text: string, facts: Facts): string {
  const { pattern, keys } = secretsOf(facts);
  if (!pattern) return text;
  return text.replace(pattern, (match) => {
    const key = keys.get(match);
    return key ? secretLabel(key) : match;
  });
}

/** An error whose message or hint may quote a secret fact (m4 quotes its input), with the secret named instead. */
export function maskSecrets(error: unknown, facts: Facts): unknown {
  if (!(error instanceof HomecloudError)) return error;
  const message = maskSecretText(error.message, facts);
  const hint = error.hint === undefined ? undefined : maskSecretText(error.hint, facts);
  if (message === error.message && hint === error.hint) return error;
  return new HomecloudError(message, error.where, hint);
}

/**
 * Whether a rendered output holds a secret value (it is then readable by
 * root only). A placeholder put back holds the value, so it counts too.
 */
export function holdsSecret(output: Buffer, facts: Facts): boolean {
  return secretValues(facts).some((value) => output.includes(value));
}
