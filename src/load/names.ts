/**
 * What a machine or layer may be called (a directory under machines/ or
 * layers/, a key of inventory.json, a `+ <name>` line): any single path
 * component. `-` is a common name (the original's repositories use it for a
 * machine that selects every layer, and for an empty layer), so a name may
 * start with "-": where a name is passed to a program, it follows `--` or
 * sits inside a longer argument, never where an option could be.
 */
export const namePattern = /^(?!\.\.?$)[^/\0\n]+$/;

/** The rule in words, for messages. */
export const machineNameRule = 'a machine name is a single path component: not "." or "..", without "/", NUL or newline';
export const layerNameRule = 'a layer name is a directory name under layers/: a single path component, not "." or "..", without "/", NUL or newline';

/** Why a name is not a machine or layer name, if it is not one. */
export function nameProblem(name: string): string | undefined {
  if (name === '') return 'is empty';
  if (name === '.' || name === '..') return `is "${name}"`;
  if (name.includes('/')) return 'holds "/"';
  if (name.includes('\0')) return 'holds a NUL character';
  if (name.includes('\n')) return 'holds a newline';
  return undefined;
}

/** A name as messages show it: as it is, or in JSON quotes when it holds white space other than spaces or control characters. */
export function shownName(name: string): string {
  return /[\p{Cc}\p{Zl}\p{Zp}]/u.test(name) ? JSON.stringify(name) : name;
}

/**
 * Sandbox machines are named more strictly: the name is the machine's host
 * name (systemd-nspawn's --hostname and --machine), so it is letters, digits,
 * ".", "_" and "-", starting with a letter or digit, and short enough for the
 * network interface named after it.
 */
export const sandboxNameRule =
  'a sandbox machine\'s name is its host name: letters, digits, ".", "_" and "-", starting with a letter or digit, at most 12 characters';

export function isSandboxName(name: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) && name.length <= 12;
}

/**
 * A machine name that can serve as its own host name when inventory.json
 * gives none (ssh and rsync read "-x" as an option, "a:b" as a host and a
 * path, "a b" as two words).
 */
export function isHostLikeName(name: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name);
}

/** A machine name as it is typed on homecloud's command line: after `--` when it starts with "-", quoted for the shell when it must be. */
export function nameArgument(name: string): string {
  const word = /^[A-Za-z0-9._+,:@%=/-]+$/.test(name) ? name : `'${name.replace(/'/g, `'\\''`)}'`;
  return name.startsWith('-') ? `-- ${word}` : word;
}
