// npm run bench [-- suite... [--image]]: benchmarks that print medians. Suites: build, sandbox, deploy, lambda (the default),
// and ansible (homecloud against Ansible on sandbox machines: tens of minutes, so only when named).
// --image also times making the sandbox base image from nothing (a minute or more).
// ansible takes --runs=N (default 5) and --transfer=synchronize or --transfer=copy (default both).
import { benchAnsible } from './ansible/bench.ts';
import { benchBuild } from './build.ts';
import { benchDeploy } from './deploy.ts';
import { benchLambda } from './lambda.ts';
import { benchSandbox } from './sandbox.ts';
import { transfers, type Transfer } from './ansible/playbook.ts';

const option = (name: string) => process.argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
const runs = Number(option('runs') ?? 5);
const transfer = option('transfer') as Transfer | undefined;
if (!(runs >= 1) || (transfer && !transfers.includes(transfer))) {
  console.error(`--runs takes a number (at least 1), --transfer one of ${transfers.join(', ')}`);
  process.exit(2);
}

const suites: Record<string, () => Promise<unknown>> = { build: () => benchBuild(), sandbox: () => benchSandbox(), deploy: () => benchDeploy(), lambda: () => benchLambda(), ansible: () => benchAnsible(runs, transfer ? [transfer] : transfers) };
const defaults = ['build', 'sandbox', 'deploy', 'lambda'];
const chosen = process.argv.slice(2).filter((arg) => !arg.startsWith('--'));
for (const name of chosen.length ? chosen : defaults) {
  const suite = suites[name];
  if (!suite) {
    console.error(`unknown benchmark "${name}"; known: ${Object.keys(suites).join(', ')}`);
    process.exit(2);
  }
  await suite();
}
