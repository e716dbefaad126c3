// npm run bench [-- suite... [--image]]: benchmarks that print medians. Suites: build, sandbox, deploy, lambda (the default),
// containers (nested in a sandbox machine of the cloud image; not a default: it makes that image when missing), network
// (the overlay and dns layers on three machines of that image; not a default either), storage (the snapshots and
// postgres layers on one machine of that image: a restore, a cluster's creation, a Postgres snapshot under load and
// its clone started; nor this one; also named snapshots),
// ansible (homecloud against Ansible on sandbox machines: tens of minutes, so only when named), and scale (how cost grows
// with the number of machines: builds of 10, 50 and 200 machines, deploys to 1, 5, 10 and 20 sandbox machines; not a
// default either: the cold build of 200 machines alone takes minutes, the whole suite about 13 at --runs=3 on 2 cores),
// status (homecloud status of three sandbox machines), check (homecloud check of the example, without and with --boot;
// it makes the cloud image when missing) and fleet (both; none of these three is a default).
// --image also times making the sandbox base image from nothing (a minute or more).
// ansible and scale take --runs=N (default 5); ansible --transfer=synchronize or --transfer=copy (default both);
// scale --build-machines=10,50 and --deploy-machines=1,5 choose the sizes (an empty list leaves that half out).
import { benchAnsible } from './ansible/bench.ts';
import { benchBuild } from './build.ts';
import { benchCheck } from './check.ts';
import { benchContainers } from './containers.ts';
import { benchDeploy } from './deploy.ts';
import { benchLambda } from './lambda.ts';
import { benchNetwork } from './network.ts';
import { benchSandbox } from './sandbox.ts';
import { benchStatus } from './status.ts';
import { benchStorage } from './storage.ts';
import { benchScaling, defaultScale } from './scale.ts';
import { transfers, type Transfer } from './ansible/playbook.ts';

const option = (name: string) => process.argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
const runs = Number(option('runs') ?? 5);
const transfer = option('transfer') as Transfer | undefined;
const sizes = (name: string, fallback: number[]) => {
  const given = option(name);
  return given === undefined ? fallback : given.split(',').filter(Boolean).map(Number);
};
const buildMachines = sizes('build-machines', defaultScale.builds);
const deployMachines = sizes('deploy-machines', defaultScale.deploys);
if (!(runs >= 1) || (transfer && !transfers.includes(transfer)) || ![...buildMachines, ...deployMachines].every((n) => Number.isInteger(n) && n >= 1)) {
  console.error(
    `--runs takes a number (at least 1), --transfer one of ${transfers.join(', ')}, --build-machines and --deploy-machines whole numbers separated by commas`,
  );
  process.exit(2);
}

const suites: Record<string, () => Promise<unknown>> = {
  build: () => benchBuild(),
  sandbox: () => benchSandbox(),
  deploy: () => benchDeploy(),
  lambda: () => benchLambda(),
  containers: () => benchContainers(),
  network: () => benchNetwork(),
  storage: () => benchStorage(),
  snapshots: () => benchStorage(),
  ansible: () => benchAnsible(runs, transfer ? [transfer] : transfers),
  scale: () => benchScaling({ runs, builds: buildMachines, deploys: deployMachines }),
  status: () => benchStatus(),
  check: () => benchCheck(),
  fleet: async () => {
    await benchStatus();
    await benchCheck();
  },
};
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
