import { Command, CommanderError } from 'commander';
import { exitStatus, printError } from '../report/output.ts';
import { runAction, type Action } from './action.ts';
import { exitWhenWritten } from './exit.ts';
import { watchStandardStreams } from '../report/stdio.ts';
import { buildOptions, commanderFlags, globalOptions, type GlobalOptions } from './options.ts';
import { mark } from '../util/timing.ts';
import packageJson from '../../package.json' with { type: 'json' };

mark('main loaded');
watchStandardStreams();

/** Load a command's module only when it runs: start-up is paid by every command. */
function run<M>(load: () => Promise<M>, pick: (module: M) => Action = (module) => (module as { run: Action }).run) {
  return async (...received: unknown[]) => {
    const command = received[received.length - 1] as Command;
    const args = received.slice(0, -2).flatMap((value) => (Array.isArray(value) ? (value as string[]) : value === undefined ? [] : [String(value)]));
    await runAction(async () => pick(await load()), args, command.optsWithGlobals() as GlobalOptions & Record<string, unknown>);
  };
}

/** The help's words on machines named "-" or "-x", which are not options: `options` go before the names, `rest` after them. */
function namesHelp(command: string, { options = '', rest = '' } = {}): string {
  return `\nA machine named "-" is named as it is (homecloud ${command}${options} -${rest}); a name that starts with "-" goes after --, which ends the options (homecloud ${command}${options} -- -x${rest}).`;
}

const program = new Command('homecloud')
  .description('Provision a mini cloud on a handful of machines from one git repository of files.')
  .version(packageJson.version, '-V, --version', "homecloud's version")
  .showHelpAfterError('(add --help for usage)')
  // Commander exits 1 on a usage error, but 1 means "a machine failed" here (inherited by the commands).
  // Thrown to the catch at the end, which exits once the help or message is written: returning would let commander exit at once.
  .exitOverride((error) => {
    throw error;
  })
  .configureHelp({ showGlobalOptions: true })
  .addHelpText('after', '\nExit status: 0 all done, 1 some machine failed, 2 bad input or usage, 70 a bug in homecloud, 130 interrupted.');
for (const option of globalOptions) program.option(commanderFlags(option), option.description);

const build = program
  .command('build')
  .description("build machines' desired trees under var/build/<machine>/ (all machines when none is named)")
  .argument('[machine...]', 'machines to build')
  .addHelpText(
    'after',
    '\nOnly what changed is rebuilt; unchanged outputs keep their mtime. A template renders again when it, a file it\nincludes, the prelude or a fact it reads changed, as make would (--rerender renders them all).\nOutput: var/build/<machine>/tree and var/build/<machine>/manifest.json.',
  )
  .addHelpText('after', namesHelp('build'))
  .action(run(() => import('./commands/build.ts')));
for (const option of buildOptions) build.option(commanderFlags(option), option.description);

program
  .command('plan')
  .description('what deploy would do on each machine: files added, changed, removed; packages; every unit action and why')
  .argument('[machine...]', 'machines to plan (all when none is named)')
  .addHelpText('after', namesHelp('plan'))
  .action(run(() => import('./commands/plan.ts')));

program
  .command('diff')
  .description('unified diffs of managed files whose live content differs from the build: changes to come and hand edits; secrets masked')
  .argument('[machine...]', 'machines to compare (all when none is named)')
  .addHelpText('after', namesHelp('diff'))
  .action(run(() => import('./commands/diff.ts')));

program
  .command('deploy')
  .description('build, then bring machines to their trees: transfer what changed, reconcile units, keep a generation')
  .argument('[machine...]', 'machines to deploy (all when none is named)')
  .option('--rollback-on-failure', 'when a machine fails after its files changed, deploy its current generation again')
  .option('--wait <seconds>', 'how long to wait for another deploy, rollback or clobber of the same machine to end', '300')
  .addHelpText(
    'after',
    '\nOnly changed files travel; unchanged ones are hard links to the current generation.\nA deploy with nothing to do transfers nothing and restarts nothing.\nEach machine is locked from its probe to its commit: a second deploy waits (--wait).\nManaged paths changed by hand are restored (drift); an apply that did not commit is done again.',
  )
  .addHelpText('after', namesHelp('deploy'))
  .action(run(() => import('./commands/deploy.ts')));

const generationsCommand = () => import('./commands/generations.ts');
program
  .command('generations')
  .description('the generations a machine keeps (each deploy makes one), and which is current')
  .argument('<machine>', 'the machine')
  .addHelpText('after', namesHelp('generations'))
  .action(run(generationsCommand, (m) => m.list));
program
  .command('rollback')
  .description('deploy an older generation again (the one before the current by default), with the usual reconcile')
  .argument('<machine>', 'the machine')
  .option('--to <generation>', 'the generation to go back to')
  .option('--wait <seconds>', 'how long to wait for another deploy, rollback or clobber of the same machine to end', '300')
  .addHelpText('after', namesHelp('rollback'))
  .action(run(generationsCommand, (m) => m.rollback as Action));

const snapshotsCommand = () => import('./commands/snapshots.ts');
program
  .command('snapshots')
  .description('the snapshots the snapshots layer keeps on a machine: when, size where btrfs knows it, sent or not')
  .argument('<machine>', 'the machine')
  .argument('[name]', 'one declaration (/usr/local/opt/snapshots/<name>.conf)')
  .addHelpText('after', namesHelp('snapshots'))
  .action(run(snapshotsCommand, (m) => m.list));
program
  .command('restore')
  .description("put a declaration's snapshot back: its units stop, the state before is snapshotted (the undo), the snapshot takes its place, the units start")
  .argument('<machine>', 'the machine')
  .argument('<name>', 'the declaration (/usr/local/opt/snapshots/<name>.conf)')
  .option('--at <time>', 'the newest snapshot at or before this time (2026-12-02T04:31:20Z, or a snapshot as listed); default: the newest')
  .option('--pitr', "a postgres cluster's point-in-time recovery to --at from its backups (BACKUP_TO=), NAME being postgres-<cluster>")
  .option('--wait <seconds>', 'how long to wait for a deploy or another restore of the same machine to end', '300')
  .addHelpText(
    'after',
    '\nWith --pitr, the cluster stops, its data directory is kept aside on the machine (putting it back undoes the\nrecovery), pgBackRest restores the newest backup before --at and the cluster replays the archived WAL up to it.',
  )
  .addHelpText('after', namesHelp('restore', { rest: ' NAME' }))
  .action(run(snapshotsCommand, (m) => m.restore as Action));

program
  .command('clobber')
  .description("Control-Alt-Delete: stop homecloud's units, remove what it placed (restoring what was there before), forget its generations")
  .argument('<machine>', 'the machine')
  .option('--yes', 'really do it')
  .option('--wait <seconds>', 'how long to wait for another deploy, rollback or clobber of the same machine to end', '300')
  .addHelpText('after', namesHelp('clobber', { options: ' --yes' }))
  .action(run(() => import('./commands/clobber.ts')));

program
  .command('watch')
  .description('on every save, rebuild what changed and deploy the machines it touches (a warm builder; Ctrl-C stops)')
  .argument('<machine...>', 'the machines to keep deployed')
  .addHelpText('after', namesHelp('watch'))
  .action(run(() => import('./commands/watch.ts')));

program
  .command('facts')
  .description('read the probe facts (ENV_HOSTNAME, ENV_NPROC, ...) of machines over SSH and cache them under var/facts/')
  .argument('[machine...]', 'machines to probe (all when none is named)')
  .option('--refresh', 'probe machines whose facts are already cached too')
  .addHelpText('after', namesHelp('facts'))
  .action(run(() => import('./commands/facts.ts')));

program
  .command('exec')
  .description('run a command on machines in parallel; output lines start with the machine name')
  .argument('<machine...>', 'the machines, then -- and the command')
  .addHelpText('after', '\nExample: homecloud exec nas media -- systemctl --failed')
  .addHelpText('after', namesHelp('exec', { rest: ' -- uptime' }))
  .action(run(() => import('./commands/exec.ts')));

program
  .command('ls')
  .description('list machines, their layers and how many paths their trees have; --network: the overlay and the names machines serve')
  .argument('[machine...]', 'with --network: the machines to read (all when none is named)')
  .option('--network', 'read each machine on the overlay or dns layer over SSH: its WireGuard addresses, port and peers, and the names it serves')
  .addHelpText(
    'after',
    `\nWith --network, each machine that selects the overlay or dns layer is read in one SSH round trip (machines in parallel, --jobs):
its hc-overlay addresses and port; each peer (named by the key it published in var/public/<machine>/wireguard), its endpoint
and how long ago it last shook hands, after a packet to each peer (an idle mesh makes no handshakes; a peer that answers
shakes hands at once); the names its resolver serves (the machine, running containers, declared services).
A peer without a handshake in the last 3 minutes is shown in yellow. Private and preshared keys never leave the machine.
Exit status 1 when a machine did not answer, its overlay is not up, or a peer has not shaken hands in the last 3 minutes.`,
  )
  .addHelpText('after', namesHelp('ls', { options: ' --network' }))
  .action(run(() => import('./commands/ls.ts')));

program
  .command('explain')
  .description('say where a path of a machine comes from: source file, rule, other layers, facts read')
  .argument('<machine>', 'the machine')
  .argument('<path>', 'the path on the machine, e.g. /usr/local/etc/nginx.conf')
  .addHelpText('after', namesHelp('explain', { rest: ' /usr/local/etc/x.conf' }))
  .action(run(() => import('./commands/explain.ts')));

program
  .command('init')
  .description('start a new cloud repository: homecloud.json, inventory.json, .gitignore, a first machine and a README')
  .argument('[dir]', 'where (default: the current directory)', '.')
  .option('--machine <name>', 'the first machine', 'first')
  .addHelpText('after', '\nIt writes no file that exists: when any of them does, it names it and writes nothing.')
  .action(run(() => import('./commands/init.ts')));

program
  .command('check')
  .description('for CI: build every machine, shellcheck its scripts, systemd-analyze verify its units and nginx -t its configuration')
  .argument('[machine...]', 'machines to check (all when none is named)')
  .option('--boot', 'also boot each machine as a sandbox machine, deploy it, and fail on any failed unit')
  .option('--junit <file>', 'also write the results as JUnit XML, for CI systems')
  .option('--image <profile>', 'the sandbox image units are verified and machines booted in (base or cloud)', 'cloud')
  .addHelpText(
    'after',
    `\nEach check prints a line: ok or FAIL, what, the machine, and on failure the file and what is wrong.
Units are verified in a throwaway sandbox machine with the built tree in place, so that what they name is there.
Exit status 1 when any check fails. A ready GitHub Actions workflow: docs/ci/homecloud-check.yml.`,
  )
  .addHelpText('after', namesHelp('check', { options: ' --boot' }))
  .action(run(() => import('./commands/check.ts')));

program
  .command('status')
  .description('one line per machine, one SSH round trip each: generation, failed units, drift, reboot required, uptime, disk, upgrades')
  .argument('[machine...]', 'machines to read (all when none is named)')
  .option('--watch [seconds]', 'on a terminal: read them again every few seconds (default 5)')
  .addHelpText(
    'after',
    '\nExit status 1 when a machine needs attention: unreachable, failed units, drift, an apply that did not commit,\nreboot required, or / at least 90% used; pending upgrades alone do not. --watch needs a terminal; Ctrl-C ends it.',
  )
  .addHelpText('after', namesHelp('status'))
  .action(run(() => import('./commands/status.ts')));

const sandbox = program
  .command('sandbox')
  .description('throwaway Debian machines with systemd as PID 1, for trying changes and for tests')
  .addHelpText(
    'after',
    '\nMachines boot in systemd-nspawn from copy-on-write clones of one cached base image,\non a private bridge with no route out. Set HOMECLOUD_SANDBOX to keep several sandboxes apart.',
  );
const sandboxCommand = () => import('./commands/sandbox.ts');
sandbox
  .command('up')
  .description('boot machines (clones of the base image) and wait until they accept SSH')
  .argument('<name...>', 'machine names')
  .option('--image <profile>', 'base (the default), or cloud: with systemd-container, btrfs-progs and debootstrap, for containers inside', 'base')
  .action(run(sandboxCommand, (m) => m.up as Action));
sandbox
  .command('down')
  .description('stop and remove machines, and clean what a crashed run left')
  .argument('[name...]', 'machine names')
  .option('--all', 'every machine of the sandbox')
  .action(run(sandboxCommand, (m) => m.down as Action));
sandbox
  .command('ls')
  .description('machines with address, state and uptime')
  .action(run(sandboxCommand, (m) => m.ls));
sandbox
  .command('reboot')
  .description('reboot a machine on its own disk: a clean shutdown, then a boot (says how long the shutdown took)')
  .argument('<name>', 'the machine')
  .action(run(sandboxCommand, (m) => m.reboot));
sandbox
  .command('ssh')
  .description('a shell, or a command, on a machine')
  .argument('<name>', 'the machine')
  .argument('[command...]', 'the command to run (after --, when it has options)')
  .action(run(sandboxCommand, (m) => m.ssh));
sandbox
  .command('logs')
  .description("a machine's journal (its console output once it stopped)")
  .argument('<name>', 'the machine')
  .option('-f, --follow', 'keep printing new lines')
  .option('-n, --lines <count>', 'how many lines', '200')
  .action(run(sandboxCommand, (m) => m.logs as Action));

program.parseAsync(process.argv).catch(async (error: unknown) => {
  // Commander has printed the help or the usage error already.
  if (error instanceof CommanderError) await exitWhenWritten(error.exitCode === 0 ? exitStatus.ok : exitStatus.usage);
  process.exitCode = printError(error);
});
