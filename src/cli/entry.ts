import type { Action } from './action.ts';
import { plainBuild } from './build-shortcut.ts';
import { repoFrom } from './context.ts';
import { ignoreClosedPipes } from './exit.ts';
import { prefetchSignatures } from '../build/prefetch.ts';
import { mark } from '../util/timing.ts';

mark('started');

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
    ignoreClosedPipes();
    return runAction(async () => (await import('./commands/build.ts')).run as Action, build.machines, build.options);
  });
} else {
  void import('./main.ts');
}
