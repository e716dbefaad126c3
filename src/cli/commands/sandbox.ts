import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { colors, exitStatus, milliseconds, table } from '../../report/output.ts';
import { now } from '../../util/timing.ts';
import { Sandbox } from '../../sandbox/sandbox.ts';
import { imageProfiles, isImageProfile } from '../../sandbox/image.ts';
import { HomecloudError } from '../../load/errors.ts';
import { runProcessSync } from '../../util/process.ts';
import type { GlobalOptions } from '../options.ts';

const sandbox = (options: GlobalOptions) => new Sandbox(undefined, (line) => process.stderr.write(`${options.json ? '' : colors.dim('… ')}${line}\n`));

export async function up(names: string[], options: GlobalOptions & { image?: string }): Promise<number> {
  const started = now();
  const image = options.image ?? 'base';
  if (!isImageProfile(image)) throw new HomecloudError(`there is no image "${image}"`, undefined, `choose one of: ${Object.keys(imageProfiles).join(', ')}`);
  const box = sandbox(options);
  const { method, started: booted } = await box.up(names, { image });
  const machines = box.list().filter((m) => names.includes(m.name));
  if (options.json) {
    process.stdout.write(JSON.stringify({ clones: method, inventory: box.paths.inventory, machines }) + '\n');
  } else {
    process.stdout.write(
      table(
        machines.map((m) => [m.name, m.address, booted.includes(m.name) ? 'started' : 'already running']),
        ['MACHINE', 'ADDRESS', 'STATE'],
      ) + '\n',
    );
    process.stdout.write(
      `${names.length} machine${names.length === 1 ? '' : 's'} up in ${milliseconds(now() - started)} (clones: ${method}); inventory: ${box.paths.inventory}\n`,
    );
  }
  return exitStatus.ok;
}

export async function down(names: string[], options: GlobalOptions & { all?: boolean }): Promise<number> {
  if (names.length === 0 && !options.all) {
    process.stderr.write('name the machines to remove, or use --all\n');
    return exitStatus.usage;
  }
  const removed = await sandbox(options).down(options.all ? 'all' : names);
  process.stdout.write(options.json ? JSON.stringify({ removed }) + '\n' : removed.length ? `removed: ${removed.join(' ')}\n` : 'no sandbox machines\n');
  return exitStatus.ok;
}

export async function reboot([name]: string[], options: GlobalOptions): Promise<number> {
  const started = now();
  const { shutdownMilliseconds } = await sandbox(options).reboot(name!);
  process.stdout.write(
    options.json
      ? JSON.stringify({ machine: name, shutdownMilliseconds, milliseconds: now() - started }) + '\n'
      : `${name} rebooted in ${milliseconds(now() - started)} (shutdown ${milliseconds(shutdownMilliseconds)})\n`,
  );
  return exitStatus.ok;
}

export async function ls(_args: string[], options: GlobalOptions): Promise<number> {
  const machines = sandbox(options).list();
  if (options.json) process.stdout.write(JSON.stringify({ machines }) + '\n');
  else if (machines.length === 0) process.stdout.write('no sandbox machines; start some with: homecloud sandbox up NAME...\n');
  else
    process.stdout.write(
      table(
        machines.map((m) => [m.name, m.address, m.state, m.uptime === undefined ? '' : uptime(m.uptime)]),
        ['MACHINE', 'ADDRESS', 'STATE', 'UPTIME'],
      ) + '\n',
    );
  return exitStatus.ok;
}

export async function ssh([name, ...command]: string[], options: GlobalOptions): Promise<number> {
  const args = sandbox(options).sshArguments(name!);
  const interactive = command.length === 0 && process.stdin.isTTY;
  return runProcessSync('ssh', [...(interactive ? ['-t'] : []), ...args, ...command], { interactive: true, check: false }).status;
}

export async function logs([name]: string[], options: GlobalOptions & { follow?: boolean; lines?: string }): Promise<number> {
  const box = sandbox(options);
  const machine = box.list().find((m) => m.name === name);
  if (machine?.state === 'running') {
    const journal = ['journalctl', '--no-pager', '-n', options.lines ?? '200', ...(options.follow ? ['-f'] : [])];
    return runProcessSync('ssh', [...box.sshArguments(name!), ...journal], { interactive: true, check: false }).status;
  }
  // A stopped machine: what its console printed.
  const console = join(box.paths.logs, `${name}.console`);
  box.sshArguments(name!);
  process.stdout.write(existsSync(console) ? readFileSync(console, 'utf8') : '');
  return exitStatus.ok;
}

function uptime(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
}
