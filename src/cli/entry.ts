import type { Action } from './action.ts';
import { plainBuild } from './build-shortcut.ts';
import { repoFrom } from './context.ts';
import { prefetchSignatures } from '../build/prefetch.ts';
import { mark } from '../util/timing.ts';
import { watchStandardStreams } from '../report/stdio.ts';

mark('started');
watchStandardStreams();

// The command line: a plain build runs at once, everything else through commander (main.ts).
const build = plainBuild(process.argv.slice(2));
if (build) {
  // The sources are signed in native threads from here on, while the rest loads (output and colours included).
  try {
    prefetchSignatures(repoFrom(build.options));
  } catch {
    // No repository: the build says so.
  }
  void import('./action.ts').then(({ runAction }) => {
    return runAction(async () => (await import('./commands/build.ts')).run as Action, build.machines, build.options);
  });
} else {
  void import('./main.ts');
}
