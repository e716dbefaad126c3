/** Options every command accepts. */
export interface GlobalOptions {
  repo?: string;
  json: boolean;
  verbose: boolean;
  /** Reach the sandbox machines of the same names instead of inventory.json's. */
  sandbox?: boolean;
  /** Machines worked on at once (overrides the `jobs` setting). */
  jobs?: string;
}

/** An option as both parsers see it: commander (main.ts) and the shortcut for a plain build (build-shortcut.ts). */
export interface OptionSpec {
  short?: string;
  long: string;
  /** The value's name in the help, for an option that takes one. */
  value?: string;
  description: string;
}

export const globalOptions: OptionSpec[] = [
  { short: 'C', long: 'repo', value: 'dir', description: 'the cloud repository (default: the one containing the current directory)' },
  { long: 'json', description: 'print machine-readable JSON instead of text' },
  { short: 'v', long: 'verbose', description: 'say more (for build: which machine files override layer files)' },
  { short: 'j', long: 'jobs', value: 'count', description: 'how many machines to work on at once (default: the jobs setting, 16)' },
  { long: 'sandbox', description: "reach the sandbox machines of the same names (homecloud sandbox up) instead of inventory.json's hosts" },
];

export const buildOptions: OptionSpec[] = [
  { long: 'rerender', description: 'render every template again, for commands (m5_esyscmd) that read more than the template, its includes and its facts' },
];

/** Commander's flags for an option: `-C, --repo <dir>`. */
export function commanderFlags(option: OptionSpec): string {
  return `${option.short ? `-${option.short}, ` : ''}--${option.long}${option.value ? ` <${option.value}>` : ''}`;
}
