import { HomecloudError } from './errors.ts';
import { isHostLikeName, shownName } from './names.ts';

/** How to reach a machine over SSH (FORMAT.md section 8). */
export interface InventoryEntry {
  host: string;
  user: string;
  /** Extra arguments for ssh, e.g. ["-p", "2222"]. */
  options: string[];
  /** A machine of the repository to go through (a bastion, the host of a container or VM). */
  via?: string;
}

export type Inventory = Record<string, InventoryEntry>;

export function withDefaults(name: string, entry: Partial<InventoryEntry> = {}): InventoryEntry {
  return { host: entry.host ?? name, user: entry.user ?? 'root', options: entry.options ?? [], ...(entry.via ? { via: entry.via } : {}) };
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

/**
 * Why ssh and rsync cannot reach a machine at its entry, if they cannot. A
 * machine name is any path component ("-" too), but only some can serve as
 * the host that defaults to it: "-x" would be read as an option, "a:b" as a
 * host and a path. Checked per machine before anything is run, so that such a
 * machine still builds and the others deploy.
 */
export function entryProblem(machine: string, entry: InventoryEntry): HomecloudError | undefined {
  if (entry.host === machine && !isHostLikeName(machine)) {
    const why = machine.startsWith('-')
      ? 'it starts with "-", which ssh would read as an option'
      : 'a host name is letters, digits, ".", "_" and "-", starting with a letter or digit';
    return new HomecloudError(
      `machine ${shownName(machine)} has no host: add it to inventory.json`,
      undefined,
      `its name cannot be its host (${why}): write its address, e.g. {${JSON.stringify(machine)}: {"host": "192.168.1.20"}}`,
    );
  }
  for (const key of ['host', 'user'] as const) {
    const problem = addressProblem(entry[key]);
    if (problem)
      return new HomecloudError(
        `the ${key} of machine ${shownName(machine)} ${problem}`,
        undefined,
        `write it in inventory.json: {${JSON.stringify(machine)}: {"${key}": "..."}}`,
      );
  }
  return undefined;
}

/**
 * The options of an entry that say which key logs in (`-i`, and `-o` IdentityFile, IdentitiesOnly,
 * CertificateFile, IdentityAgent): what a machine this one hosts is logged in with too.
 */
export function identityOptions(options: readonly string[]): string[] {
  const identity = /^(IdentityFile|IdentitiesOnly|CertificateFile|IdentityAgent)\s*[=\s]/i;
  const kept: string[] = [];
  for (let i = 0; i < options.length; i++) {
    const option = options[i]!;
    if ((option === '-i' || option === '-o') && i + 1 < options.length) {
      const value = options[++i]!;
      if (option === '-i' || identity.test(value)) kept.push(option, value);
    } else if (/^-i./.test(option) || (option.startsWith('-o') && identity.test(option.slice(2)))) kept.push(option);
  }
  return kept;
}
