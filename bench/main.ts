// npm run bench [-- suite... [--image]]: benchmarks that print medians. Suites: build, sandbox, deploy, lambda (default: all).
// --image also times making the sandbox base image from nothing (a minute or more).
import { benchBuild } from './build.ts';
import { benchDeploy } from './deploy.ts';
import { benchLambda } from './lambda.ts';
import { benchSandbox } from './sandbox.ts';

const suites: Record<string, () => Promise<unknown>> = { build: () => benchBuild(), sandbox: () => benchSandbox(), deploy: () => benchDeploy(), lambda: () => benchLambda() };
const chosen = process.argv.slice(2).filter((arg) => !arg.startsWith('--'));
for (const name of chosen.length ? chosen : Object.keys(suites)) {
  const suite = suites[name];
  if (!suite) {
    console.error(`unknown benchmark "${name}"; known: ${Object.keys(suites).join(', ')}`);
    process.exit(2);
  }
  await suite();
}
