import { readFileSync } from 'node:fs';
import { HomecloudError, describeSystemError } from '../load/errors.ts';
import type { JsonDocument } from '../load/json.ts';

export type FactOrigin = 'machine' | 'default' | 'json' | 'env' | 'probe';

export interface Fact {
  key: string;
  value: string;
  origin: FactOrigin;
  /** Where the value was set: file (and line), as the user sees it. */
  file?: string;
  line?: number;
  /** Values from facts/<m>.env are secrets: never printed. */
  secret: boolean;
}

/** A machine's facts by key, after precedence was applied. */
export type Facts = Map<string, Fact>;

/** Facts read from the live machine by `homecloud facts` (declared in probe-values.ts). */
export { probeFactNames } from './probe-values.ts';

const keyPattern = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `KEY=VALUE` lines; `#` lines and blank lines ignored; one pair of surrounding single quotes removed. */
export function parseEnvFacts(text: string, file: string, origin: FactOrigin): Fact[] {
  const facts: Fact[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, index) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const where = { file, line: index + 1 };
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    const equals = line.indexOf('=');
    if (equals < 0) {
      throw new HomecloudError('expected a KEY=VALUE line', where, 'write the fact as KEY=VALUE, or start the line with # to make it a comment');
    }
    const key = line.slice(0, equals);
    checkKey(key, where);
    let value = line.slice(equals + 1);
    if (value.length >= 2 && value.startsWith("'") && value.endsWith("'")) value = value.slice(1, -1);
    facts.push({ key, value, origin, file, line: index + 1, secret: origin === 'env' });
  });
  return facts;
}

export function readEnvFacts(path: string, file: string, origin: FactOrigin): Fact[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new HomecloudError(`cannot read: ${describeSystemError(error)}`, { file });
  }
  return parseEnvFacts(text, file, origin);
}

/** Top-level keys of facts/<m>.json, each value turned into text as FORMAT.md says. */
export function jsonFacts(document: JsonDocument): Fact[] {
  const value = document.value;
  if (value === undefined || value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new HomecloudError('facts must be a JSON object of "KEY": value pairs', document.locate([]));
  }
  return Object.entries(value as Record<string, unknown>).map(([key, item]) => {
    const where = document.locateKey([], key);
    checkKey(key, where);
    const text = factText(item);
    if (text.includes('\n')) {
      throw new HomecloudError(
        `the value of ${key} contains a newline`,
        where,
        'a fact is one line of text: remove the newline, or keep multi-line content in a file',
      );
    }
    return { key, value: text, origin: 'json' as const, file: where.file, line: where.line, secret: false };
  });
}

function factText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map((item) => (typeof item === 'string' ? item : JSON.stringify(item))).join(',');
  return JSON.stringify(value);
}

function checkKey(key: string, where: { file: string; line?: number; column?: number }): void {
  if (!keyPattern.test(key)) {
    throw new HomecloudError(
      `"${key}" is not a fact name`,
      where,
      'a fact name is letters, digits and "_", not starting with a digit (by convention ENV_SOMETHING)',
    );
  }
}

/** Apply facts in precedence order: a later one overrides an earlier one. */
export function mergeFacts(...groups: Fact[][]): Facts {
  const facts: Facts = new Map();
  for (const group of groups) for (const fact of group) facts.set(fact.key, fact);
  return facts;
}

/** The secret values among the facts, longest first (for masking output). */
export function secretValues(facts: Facts): string[] {
  return [...facts.values()]
    .filter((fact) => fact.secret && fact.value.length > 0)
    .map((fact) => fact.value)
    .sort((a, b) => b.length - a.length);
}
