import { parseArgs } from 'node:util';
import { buildOptions, globalOptions, type GlobalOptions } from './options.ts';

/**
 * A plain `homecloud build [machine...]` skips commander, whose loading is a
 * good part of a no-change build: node's own parser reads the same options.
 * Anything else (help, a usage error, build's options before the word build,
 * another command) is undefined and goes to commander, which says it.
 */
export function plainBuild(argv: string[]): { machines: string[]; options: GlobalOptions & { rerender?: boolean } & Record<string, unknown> } | undefined {
  const specs = [...globalOptions, ...buildOptions];
  const options = Object.fromEntries(
    specs.map((spec) => [spec.long, { type: spec.value ? ('string' as const) : ('boolean' as const), ...(spec.short ? { short: spec.short } : {}) }]),
  );
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true, tokens: true });
  } catch {
    return undefined;
  }
  const command = parsed.tokens.find((token) => token.kind === 'positional' || token.kind === 'option-terminator');
  if (command?.kind !== 'positional' || command.value !== 'build') return undefined;
  const ownOptions = new Set(buildOptions.map((spec) => spec.long));
  if (parsed.tokens.some((token) => token.kind === 'option' && ownOptions.has(token.name) && token.index < command.index)) return undefined;
  const values = parsed.values as Record<string, string | boolean | undefined>;
  return {
    machines: parsed.positionals.slice(1),
    options: {
      repo: values.repo as string | undefined,
      json: values.json === true,
      verbose: values.verbose === true,
      sandbox: values.sandbox === true ? true : undefined,
      jobs: values.jobs as string | undefined,
      rerender: values.rerender === true ? true : undefined,
    },
  };
}
