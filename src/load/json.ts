import { readFileSync } from 'node:fs';
import { parseTree, findNodeAtLocation, printParseErrorCode, type Node, type ParseError } from 'jsonc-parser';
import { HomecloudError, describeSystemError, type Location } from './errors.ts';

/** A JSON file kept with its syntax tree, so that any value can be located. */
export class JsonDocument {
  private lineStarts: number[] | undefined;

  constructor(
    readonly file: string,
    readonly text: string,
    readonly tree: Node | undefined,
  ) {}

  get value(): unknown {
    return this.tree ? nodeValue(this.tree) : undefined;
  }

  /** Where the value at `path` (or its key, for object members) starts. */
  locate(path: (string | number)[]): Location {
    if (!this.tree) return { file: this.file };
    let node = findNodeAtLocation(this.tree, path);
    // Point at the key of an object member rather than at its value.
    if (node?.parent?.type === 'property') node = node.parent;
    while (!node && path.length > 0) {
      path = path.slice(0, -1);
      node = findNodeAtLocation(this.tree, path);
    }
    return this.at(node?.offset ?? 0);
  }

  /** The location of a key of the object at `path`. */
  locateKey(path: (string | number)[], key: string): Location {
    const object = this.tree && (path.length ? findNodeAtLocation(this.tree, path) : this.tree);
    const property = object?.children?.find((p) => p.children?.[0]?.value === key);
    return this.at(property?.offset ?? object?.offset ?? 0);
  }

  at(offset: number): Location {
    this.lineStarts ??= computeLineStarts(this.text);
    let low = 0;
    let high = this.lineStarts.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if (this.lineStarts[mid]! <= offset) low = mid;
      else high = mid - 1;
    }
    return { file: this.file, line: low + 1, column: offset - this.lineStarts[low]! + 1 };
  }
}

function computeLineStarts(text: string): number[] {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) starts.push(i + 1);
  return starts;
}

function nodeValue(node: Node): unknown {
  switch (node.type) {
    case 'object': {
      const result: Record<string, unknown> = {};
      for (const property of node.children ?? []) {
        const [key, value] = property.children ?? [];
        if (key && value) result[key.value as string] = nodeValue(value);
      }
      return result;
    }
    case 'array':
      return (node.children ?? []).map(nodeValue);
    default:
      return node.value;
  }
}

/**
 * Parse JSON; errors name the file, line and column. homecloud's own files (inventory.json, homecloud.json) may
 * hold // and /* *\/ comments (`comments`); facts are strict JSON, which other tools read too.
 */
export function parseJson(text: string, file: string, { comments = false } = {}): JsonDocument {
  const errors: ParseError[] = [];
  const tree = parseTree(text, errors, { disallowComments: !comments, allowTrailingComma: false, allowEmptyContent: false });
  const document = new JsonDocument(file, text, tree);
  const first = errors[0];
  if (first) {
    throw new HomecloudError(
      `invalid JSON: ${describeParseError(printParseErrorCode(first.error))}`,
      document.at(first.offset),
      comments ? 'fix the syntax at that place (no trailing commas)' : 'fix the syntax at that place (JSON allows no comments and no trailing commas)',
    );
  }
  const duplicate = tree && findDuplicateKey(tree);
  if (duplicate) {
    throw new HomecloudError(`duplicate key "${duplicate.value as string}"`, document.at(duplicate.offset), 'keep one of them');
  }
  return document;
}

export function readJsonFile(path: string, file: string, options: { comments?: boolean } = {}): JsonDocument {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new HomecloudError(`cannot read: ${describeSystemError(error)}`, { file });
  }
  return parseJson(text, file, options);
}

function findDuplicateKey(node: Node): Node | undefined {
  if (node.type === 'object') {
    const seen = new Set<string>();
    for (const property of node.children ?? []) {
      const key = property.children?.[0];
      if (key && seen.has(key.value as string)) return key;
      if (key) seen.add(key.value as string);
    }
  }
  for (const child of node.children ?? []) {
    const found = findDuplicateKey(child);
    if (found) return found;
  }
  return undefined;
}

function describeParseError(code: string): string {
  const words: Record<string, string> = {
    InvalidSymbol: 'unexpected character',
    InvalidNumberFormat: 'malformed number',
    PropertyNameExpected: 'expected a property name in double quotes',
    ValueExpected: 'expected a value',
    ColonExpected: 'expected ":"',
    CommaExpected: 'expected "," or a closing bracket',
    CloseBraceExpected: 'expected "}"',
    CloseBracketExpected: 'expected "]"',
    EndOfFileExpected: 'unexpected text after the end',
    InvalidCommentToken: 'comments are not allowed',
    UnexpectedEndOfComment: 'unterminated comment',
    UnexpectedEndOfString: 'unterminated string',
    UnexpectedEndOfNumber: 'unterminated number',
    InvalidUnicode: 'invalid unicode escape',
    InvalidEscapeCharacter: 'invalid escape character',
    InvalidCharacter: 'invalid character in string',
  };
  return words[code] ?? code;
}
