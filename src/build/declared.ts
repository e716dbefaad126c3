import { HomecloudError } from '../load/errors.ts';

/** FORMAT.md section 7: the line formats under usr/local/opt/initd/. */

export const initdDir = '/usr/local/opt/initd';
export const linksFile = /^\/usr\/local\/opt\/initd\/links\/[^/]+\.txt$/;
export const packagesFile = /^\/usr\/local\/opt\/initd\/packages\/[^/]+\.txt$/;
export const triggersFile = /^\/usr\/local\/opt\/initd\/triggers\/[^/]+\.txt$/;

export interface DeclaredLink {
  path: string;
  target: string;
  file: string;
  line: number;
}

export interface PackageDeclaration {
  action: '+' | '-';
  name: string;
  file: string;
  line: number;
}

export const triggerActions = ['reload', 'restart', 'reload-or-restart', 'start'] as const;

export interface TriggerDeclaration {
  glob: string;
  action: (typeof triggerActions)[number];
  unit: string;
  file: string;
  line: number;
}

function meaningfulLines(text: string): { text: string; line: number }[] {
  return text
    .split('\n')
    .map((raw, index) => ({ text: raw.replace(/\r$/, ''), line: index + 1 }))
    .filter(({ text: line }) => line.trim() !== '' && !line.trimStart().startsWith('#'));
}

/** `<absolute link path> <target>`: the first field is the link, the rest of the line its target. */
export function parseLinks(text: string, file: string): DeclaredLink[] {
  return meaningfulLines(text).map(({ text: line, line: number }) => {
    const match = /^\s*(\S+)\s+(\S.*?)\s*$/.exec(line);
    const where = { file, line: number };
    if (!match) throw new HomecloudError('expected "<absolute link path> <target>"', where, 'write the link path, a space, then the target');
    const [, path, target] = match as unknown as [string, string, string];
    if (!path.startsWith('/') || path === '/' || path.split('/').some((part) => part === '..' || part === '.')) {
      throw new HomecloudError(`"${path}" is not an absolute link path`, where, 'the first field is where the link goes on the target, e.g. /usr/local/lib/systemd/system/multi-user.target.wants/x@a.service');
    }
    return { path: path.replace(/\/+$/, '').replace(/\/{2,}/g, '/'), target, file, line: number };
  });
}

/** `+ <package>` must be installed, `- <package>` must be purged; other lines are ignored. */
export function parsePackages(text: string, file: string): PackageDeclaration[] {
  const declarations: PackageDeclaration[] = [];
  text.split('\n').forEach((raw, index) => {
    const match = /^([+-]) (\S+)\s*$/.exec(raw.replace(/\r$/, ''));
    if (!match) return;
    const name = match[2]!;
    const where = { file, line: index + 1 };
    if (!/^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$/.test(name)) {
      throw new HomecloudError(`"${name}" is not a Debian package name`, where, 'package names are lower-case letters, digits, "+", "-" and "." (optionally :arch)');
    }
    declarations.push({ action: match[1] as '+' | '-', name, file, line: index + 1 });
  });
  return declarations;
}

/** `<glob> <action> <unit>` lines. */
export function parseTriggers(text: string, file: string): TriggerDeclaration[] {
  return meaningfulLines(text).map(({ text: line, line: number }) => {
    const fields = line.trim().split(/\s+/);
    const where = { file, line: number };
    if (fields.length !== 3) {
      throw new HomecloudError('expected "<glob> <action> <unit>"', where, `e.g. /usr/local/opt/app/** restart app.service; actions: ${triggerActions.join(', ')}`);
    }
    const [glob, action, unit] = fields as [string, string, string];
    if (!(triggerActions as readonly string[]).includes(action)) {
      throw new HomecloudError(`unknown trigger action "${action}"`, where, `use one of: ${triggerActions.join(', ')}`);
    }
    if (!glob.startsWith('/')) throw new HomecloudError(`"${glob}" is not an absolute path pattern`, where, 'start the pattern with /');
    return { glob, action: action as TriggerDeclaration['action'], unit, file, line: number };
  });
}

/** Packages to install and purge; the same package both ways is an error naming both lines. */
export function collectPackages(declarations: PackageDeclaration[]): { install: string[]; purge: string[] } {
  const seen = new Map<string, PackageDeclaration>();
  for (const declaration of declarations) {
    const earlier = seen.get(declaration.name);
    if (earlier && earlier.action !== declaration.action) {
      throw new HomecloudError(
        `package ${declaration.name} is to be ${declaration.action === '+' ? 'installed' : 'purged'} here but ${earlier.action === '+' ? 'installed' : 'purged'} at ${earlier.file}:${earlier.line}`,
        { file: declaration.file, line: declaration.line },
        'keep one of the two lines',
      );
    }
    if (!earlier) seen.set(declaration.name, declaration);
  }
  const all = [...seen.values()];
  return {
    install: all.filter((d) => d.action === '+').map((d) => d.name).sort(),
    purge: all.filter((d) => d.action === '-').map((d) => d.name).sort(),
  };
}
