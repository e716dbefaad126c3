import { runAction, type Action } from './action.ts';
import { plainBuild } from './build-shortcut.ts';
import { ignoreClosedPipes } from './exit.ts';
import { mark } from '../util/timing.ts';

mark('started');

// The command line: a plain build runs at once, everything else through commander (main.ts).
const build = plainBuild(process.argv.slice(2));
if (build) {
  ignoreClosedPipes();
  void runAction(async () => (await import('./commands/build.ts')).run as Action, build.machines, build.options);
} else {
  void import('./main.ts');
}
