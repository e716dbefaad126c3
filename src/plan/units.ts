/** What a deployed systemd unit file says that matters for reconciling: the files it reads, whether it can reload. */

export const unitDirectories = ['/usr/local/lib/systemd/system/', '/etc/systemd/system/'];
const unitSuffix = /\.(service|socket|timer|path|mount|automount|swap|target|slice|scope)$/;

/** A unit file or drop-in path: the unit it belongs to, or undefined. */
export function unitOf(path: string): { unit: string; dropIn: boolean } | undefined {
  const dir = unitDirectories.find((d) => path.startsWith(d));
  if (!dir) return undefined;
  const rest = path.slice(dir.length);
  const parts = rest.split('/');
  if (parts.length === 1 && unitSuffix.test(parts[0]!)) return { unit: parts[0]!, dropIn: false };
  if (parts.length === 2 && parts[0]!.endsWith('.d') && parts[1]!.endsWith('.conf')) {
    const unit = parts[0]!.slice(0, -2);
    if (unitSuffix.test(unit)) return { unit, dropIn: true };
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
const referencing = /^(Exec(Start|StartPre|StartPost|Reload|Stop|StopPost|Condition)|EnvironmentFile|BindPaths|BindReadOnlyPaths|LoadCredential|LoadCredentialEncrypted|SetCredentialEncrypted|RootImage|RootDirectory|ReadOnlyPaths|ConfigurationDirectory|WorkingDirectory|PIDFile|ListenStream|ListenDatagram|ListenFIFO|Sockets|PathChanged|PathModified|What)$/;

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
      if (token.startsWith('/') && !token.includes('%') && !token.includes('$')) paths.add(token.replace(/\/+$/, '') || '/');
    }
  }
  return { paths: [...paths], reloads };
}
