/** How to reach a machine over SSH (FORMAT.md section 8). */
export interface InventoryEntry {
  host: string;
  user: string;
  /** Extra arguments for ssh, e.g. ["-p", "2222"]. */
  options: string[];
}

export type Inventory = Record<string, InventoryEntry>;

/** What a machine may be called (a directory under machines/, a key of inventory.json): this pattern and its words. */
export const machineNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
export const machineNameRule = 'a machine name is letters, digits, ".", "_" and "-", starting with a letter or digit';

export function withDefaults(name: string, entry: Partial<InventoryEntry> = {}): InventoryEntry {
  return { host: entry.host ?? name, user: entry.user ?? 'root', options: entry.options ?? [] };
}

/**
 * Why a host or user cannot go on ssh's command line, if it cannot: a leading
 * "-" would be read as an option, and white space or control characters as
 * more than one word (or a forged line in a log).
 */
export function addressProblem(value: string): string | undefined {
  if (value.startsWith('-')) return 'starts with "-": ssh would read it as an option';
  const odd = /[\s\p{Cc}]/u.exec(value)?.[0];
  if (odd === undefined) return undefined;
  return /\s/.test(odd) ? 'holds white space' : `holds a control character (U+${odd.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')})`;
}
