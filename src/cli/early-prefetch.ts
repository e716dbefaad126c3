import { prefetchSignatures } from '../build/prefetch.ts';
import { findRepoRoot, RepoPaths } from '../load/repo.ts';
import { globalOptions } from './options.ts';

/**
 * What looks like `homecloud [options] build ...` starts signing its sources before the command line's
 * bundle loads (boot.ts), a few milliseconds before entry.ts could: the command line is parsed properly
 * later, and a wrong guess costs only a walk in the background.
 */
export function prefetchForArguments(argv: string[]): void {
  const takesValue = new Set(
    globalOptions.filter((option) => option.value).flatMap((option) => [`--${option.long}`, ...(option.short ? [`-${option.short}`] : [])]),
  );
  let directory = '.';
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-C' || arg === '--repo') directory = argv[++i] ?? directory;
    else if (arg.startsWith('--repo=')) directory = arg.slice('--repo='.length);
    else if (arg.startsWith('-C')) directory = arg.slice(2);
    else if (takesValue.has(arg)) i++;
    else if (!arg.startsWith('-')) {
      if (arg !== 'build') return;
      try {
        prefetchSignatures(new RepoPaths(findRepoRoot(directory)));
      } catch {
        // No repository: the build says so.
      }
      return;
    }
  }
}
