/** What a deployed systemd unit file says that matters for reconciling: the files it reads, whether it can reload. */

export const unitDirectories = ['/usr/local/lib/systemd/system/', '/etc/systemd/system/'];
/** The same, in the order systemd looks (systemd.unit(5), "unit file load path"): /etc wins. */
const lookupOrder = ['/etc/systemd/system/', '/usr/local/lib/systemd/system/'];
const unitTypes = ['service', 'socket', 'timer', 'path', 'mount', 'automount', 'swap', 'target', 'slice', 'scope'];
const unitSuffix = new RegExp(`\\.(${unitTypes.join('|')})$`);

/**
 * A unit file or a drop-in of one unit (`x.service.d/`, `x@.service.d/`, `x@a.service.d/`): the unit it
 * belongs to, or undefined. A prefix or type drop-in (`x-.service.d/`, `service.d/`) belongs to no one unit:
 * see `dropInOf`.
 */
export function unitOf(path: string): { unit: string; dropIn: boolean } | undefined {
  const dir = unitDirectories.find((d) => path.startsWith(d));
  if (!dir) return undefined;
  const parts = path.slice(dir.length).split('/');
  if (parts.length === 1 && unitSuffix.test(parts[0]!)) return { unit: parts[0]!, dropIn: false };
  const dropIn = dropInOf(path);
  return dropIn?.unit ? { unit: dropIn.unit, dropIn: true } : undefined;
}

/** A drop-in file: `<unit directory>/<dir>.d/<name>.conf`. */
export interface DropIn {
  path: string;
  /** The unit directory it is in (`/usr/local/lib/systemd/system/`). */
  root: string;
  /**
   * Its directory's name without `.d`: a unit (`nginx.service`), a template or an instance (`x@.service`,
   * `x@a.service`), a dash prefix (`homecloud-.service`; `homecloud-@.service` for instances only) or a
   * unit type (`service`: every service).
   */
  dir: string;
  /** Its file name: a same-named drop-in further down the lookup shadows it (`10-sandbox.conf`). */
  name: string;
  /** The one unit whose drop-in it is; undefined for a prefix or type drop-in, which applies to many. */
  unit: string | undefined;
}

/** A drop-in of any form, or undefined. */
export function dropInOf(path: string): DropIn | undefined {
  const root = unitDirectories.find((d) => path.startsWith(d));
  if (!root) return undefined;
  const parts = path.slice(root.length).split('/');
  if (parts.length !== 2 || !parts[0]!.endsWith('.d') || !parts[1]!.endsWith('.conf')) return undefined;
  const dir = parts[0]!.slice(0, -2);
  if (unitTypes.includes(dir)) return { path, root, dir, name: parts[1]!, unit: undefined };
  const type = unitSuffix.exec(dir);
  if (!type) return undefined;
  // The name before the instance or the type: `x-` is a prefix, `-` alone is a unit (the root slice, `-.slice`).
  const stem = dir.slice(0, dir.includes('@') ? dir.indexOf('@') : type.index);
  return { path, root, dir, name: parts[1]!, unit: stem.length > 1 && stem.endsWith('-') ? undefined : dir };
}

/** Whether a unit name is a template (`x@.service`): it stands for its instances. */
export function isTemplate(unit: string): boolean {
  return /@\.[^.@]+$/.test(unit);
}

/** What acting on a unit acts on: a template (`x@.service`) stands for its running instances (`x@*.service`). */
export function instancesOf(unit: string): string {
  return unit.replace(/@\./, '@*.');
}

/** An instance's template (`x@a.service` -> `x@.service`), or undefined for any other unit. */
export function templateOf(unit: string): string | undefined {
  const match = /^([^@]+)@[^@]+(\.[^.@]+)$/.exec(unit);
  return match ? `${match[1]}@${match[2]}` : undefined;
}

/**
 * The drop-in directories (names without `.d`) systemd reads for a unit, most specific first, as its
 * `unit_file_find_dirs` does (systemd.unit(5), on drop-ins): the unit's own; for an instance, its template's;
 * then, for each dash prefix, the prefix's (`foo-bar-baz.service`: `foo-bar-.service`, `foo-.service`; an
 * instance `foo-bar@a.service` also reads `foo-@a.service` and `foo-@.service`); last the type's (`service`).
 * A leading dash is no prefix (`-.slice`, the root slice, reads `-.slice.d/` and `slice.d/` only). For a
 * template (`x@.service`): the directories every instance reads.
 */
export function dropInDirectories(unit: string): string[] {
  const type = unitSuffix.exec(unit)?.[1];
  if (!type) return [];
  // A template: an instance with a placeholder, without the directories that name the placeholder.
  const placeholder = '\0';
  const dirs: string[] = [];
  const walk = (name: string): void => {
    if (!dirs.includes(name)) dirs.push(name);
    const at = name.indexOf('@');
    const dot = name.length - type.length - 1;
    const instance = at >= 0 && at + 1 < dot ? name.slice(at + 1, dot) : undefined;
    if (instance !== undefined) walk(`${name.slice(0, at)}@.${type}`);
    let prefix = name.slice(0, at >= 0 ? at : dot);
    // Up to the last dash; a trailing dash is chopped off once (`foo-bar-.service` goes on to `foo-.service`).
    for (let chopped = false; ; chopped = true) {
      const dash = prefix.lastIndexOf('-');
      if (dash <= 0) return;
      if (dash + 1 < prefix.length || chopped) {
        prefix = prefix.slice(0, dash + 1);
        break;
      }
      prefix = prefix.slice(0, dash);
    }
    walk(instance === undefined ? `${prefix}.${type}` : `${prefix}@${instance}.${type}`);
  };
  walk(isTemplate(unit) ? unit.replace(/@\./, `@${placeholder}.`) : unit);
  return [...dirs.filter((dir) => !dir.includes(placeholder)), type];
}

/** A tree's drop-ins, by directory name. */
export type DropInIndex = Map<string, DropIn[]>;

export function dropInIndex(paths: Iterable<string>): DropInIndex {
  const index: DropInIndex = new Map();
  for (const path of paths) {
    const dropIn = dropInOf(path);
    if (!dropIn) continue;
    const known = index.get(dropIn.dir);
    if (known) known.push(dropIn);
    else index.set(dropIn.dir, [dropIn]);
  }
  return index;
}

/**
 * The drop-ins that apply to a unit (for a template, to every instance), as systemd merges them, in the order
 * it reads them (by file name): of same-named files, the one in /etc wins over /usr/local/lib, and within a
 * unit directory the one in the more specific directory (`x-a.service.d/10.conf` over `x-.service.d/10.conf`
 * over `service.d/10.conf`; type drop-ins come after both unit directories).
 */
export function dropInsOf(unit: string, index: DropInIndex): DropIn[] {
  const dirs = dropInDirectories(unit);
  if (!dirs.some((dir) => index.has(dir))) return [];
  const type = dirs[dirs.length - 1]!;
  const order = [...lookupOrder.flatMap((root) => dirs.slice(0, -1).map((dir) => [root, dir] as const)), ...lookupOrder.map((root) => [root, type] as const)];
  const byName = new Map<string, DropIn>();
  for (const [root, dir] of order) {
    for (const dropIn of index.get(dir) ?? []) if (dropIn.root === root && !byName.has(dropIn.name)) byName.set(dropIn.name, dropIn);
  }
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The unit file systemd loads for a unit among these paths (an instance without one of its own: its template's). */
export function unitFileOf(unit: string, has: (path: string) => boolean): string | undefined {
  for (const name of [unit, templateOf(unit)]) {
    const path = name && lookupOrder.map((root) => `${root}${name}`).find(has);
    if (path) return path;
  }
  return undefined;
}

/** `<dir>/<target>.wants/<unit>` or `.requires/`: the unit a link enables. */
export function wantedUnit(path: string): string | undefined {
  const dir = unitDirectories.find((d) => path.startsWith(d));
  if (!dir) return undefined;
  const parts = path.slice(dir.length).split('/');
  if (parts.length === 2 && /\.(wants|requires)$/.test(parts[0]!) && unitSuffix.test(parts[1]!)) return parts[1];
  return undefined;
}

/** Directives whose values name files the service reads (changing one means reloading or restarting it). */
const referencing =
  /^(Exec(Start|StartPre|StartPost|Reload|Stop|StopPost|Condition)|EnvironmentFile|BindPaths|BindReadOnlyPaths|LoadCredential|LoadCredentialEncrypted|SetCredentialEncrypted|RootImage|RootDirectory|ReadOnlyPaths|ConfigurationDirectory|WorkingDirectory|PIDFile|ListenStream|ListenDatagram|ListenFIFO|Sockets|PathChanged|PathModified|What)$/;

export interface UnitReferences {
  /** Absolute paths the unit's configuration names (files or directories). */
  paths: string[];
  /** Whether it has ExecReload (a reload is possible). */
  reloads: boolean;
}

/** The files a unit file (with its drop-ins, concatenated) refers to. */
export function unitReferences(text: string): UnitReferences {
  const paths = new Set<string>();
  let reloads = false;
  for (const raw of text.replace(/\\\n/g, ' ').split('\n')) {
    const line = raw.trim();
    const equals = line.indexOf('=');
    if (equals <= 0 || line.startsWith('#') || line.startsWith(';')) continue;
    const key = line.slice(0, equals).trim();
    const value = line.slice(equals + 1).trim();
    if (key === 'ExecReload' && value !== '') reloads = true;
    if (!referencing.test(key)) continue;
    for (let token of value.split(/\s+/)) {
      // Exec prefixes (-@:+!), optional-file dashes, credential ids (id:path), bind pairs (src:dst).
      token = token.replace(/^[-@:+!]+/, '');
      if (key.startsWith('LoadCredential') || key.startsWith('SetCredential')) token = token.slice(token.indexOf(':') + 1);
      if (key.startsWith('Bind')) token = token.split(':')[0]!;
      token = token.replace(/^-/, '');
      // A program's option with its file (--conf-file=/etc/x.conf, its dashes gone with the prefixes above).
      token = /^[A-Za-z0-9_-]+=(\/.*)$/.exec(token)?.[1] ?? token;
      if (token.startsWith('/') && !token.includes('%') && !token.includes('$')) paths.add(token.replace(/\/+$/, '') || '/');
    }
  }
  return { paths: [...paths], reloads };
}
