/** FORMAT.md section 4: how a source file's name and kind decide its output. */

export type Rule = 'copy' | 'template' | 'deref' | 'link';

/** `x.m4.conf` -> `x.conf`, `.m4.iftoprc` -> `.iftoprc`, `!secret.env` -> `secret.env`. */
export function outputName(basename: string): string {
  const name = basename.startsWith('!') ? basename.slice(1) : basename;
  return name.split('.m4.').join('.');
}

export function isTemplate(basename: string): boolean {
  return basename.includes('.m4.');
}

export function ruleFor(basename: string, isSymlink: boolean): Rule {
  if (isTemplate(basename)) return 'template';
  if (basename.startsWith('!')) return 'deref';
  return isSymlink ? 'link' : 'copy';
}

export const ruleDescriptions: Record<Rule, string> = {
  copy: 'copied with its permission bits',
  template: 'rendered with GNU m4 and the machine\'s facts',
  deref: 'a "!" link, dereferenced: the output holds its target\'s content',
  link: 'a symbolic link, kept with its target text',
};

/** A file named `.pin` sets the sticky bit on its directory. */
export const pinName = '.pin';

/** A file named `.private` makes the files beside it readable by root alone. */
export const privateName = '.private';

export const directoryMode = 0o755;
export const pinnedDirectoryMode = 0o1755;

/** Prelude files: the base layer's m4 files that m4 reads before every template. */
export const preludePath = /^\/usr\/local\/include\/m4\/[^/]+\.m4$/;
