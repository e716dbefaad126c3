import type { ErrorJson } from '../load/errors.ts';
import { isSandboxName, sandboxNameRule } from '../load/names.ts';
import type { RepoPaths } from '../load/repo.ts';
import type { ImageProfile } from '../sandbox/image.ts';
import { SandboxPaths } from '../sandbox/paths.ts';
import { Sandbox } from '../sandbox/sandbox.ts';
import { shortHash } from '../util/short-hash.ts';
import { runProcess } from '../util/process.ts';
import type { CheckResult, Problem } from './results.ts';

type Outcome = Omit<CheckResult, 'check' | 'machine' | 'milliseconds'>;

/** The sandbox `check --boot` uses: the repository's own, apart from the user's sandbox machines of the same names. */
export function checkSandboxPaths(repo: RepoPaths): SandboxPaths {
  return new SandboxPaths(`/var/lib/homecloud/check-${shortHash(repo.root)}`);
}

/** homecloud itself, as this process runs it (the bundle, or the sources under tsx). */
function homecloud(args: string[], env: NodeJS.ProcessEnv) {
  return runProcess(process.execPath, [...process.execArgv, process.argv[1]!, ...args], {
    env: { ...process.env, ...env },
    check: false,
    timeout: 30 * 60_000,
  });
}

/**
 * Each machine as a sandbox machine of the same name: booted from the image, deployed (through the same deploy
 * a real machine gets), rebooted on its own disk, then read: a unit that failed at boot, or a system that is not
 * running, fails the check. The machines are taken down after, whatever happened.
 */
export async function bootMachines(repo: RepoPaths, machines: string[], image: ImageProfile, log: (line: string) => void): Promise<Map<string, Outcome>> {
  const outcomes = new Map<string, Outcome>();
  const fail = (machine: string, summary: string, problems: Problem[] = [{ message: summary }]) => outcomes.set(machine, { ok: false, summary, problems });
  const bootable = machines.filter((machine) => isSandboxName(machine));
  for (const machine of machines.filter((m) => !isSandboxName(m))) fail(machine, `not booted: ${sandboxNameRule}`);
  if (bootable.length === 0) return outcomes;
  const paths = checkSandboxPaths(repo);
  const sandbox = new Sandbox(paths, log);
  try {
    log(`booting ${bootable.join(', ')} as sandbox machines (${image} image)`);
    await sandbox.up(bootable, { image });
    const deploy = await homecloud(['-C', repo.root, '--sandbox', '--json', 'deploy', '--', ...bootable], { HOMECLOUD_SANDBOX: paths.home });
    const failedDeploys = new Map<string, ErrorJson & { details?: string }>();
    for (const line of deploy.stdout.split('\n')) {
      if (!line.startsWith('{')) continue;
      const event = JSON.parse(line) as { event?: string; machine?: string; error?: ErrorJson; details?: string };
      if (event.event === 'failed' && event.machine) failedDeploys.set(event.machine, { ...(event.error ?? { message: 'failed' }), details: event.details });
    }
    if (deploy.status !== 0 && failedDeploys.size === 0) {
      for (const machine of bootable)
        fail(machine, `the deploy failed (exit status ${deploy.status}): ${deploy.stderr.trim().split('\n').slice(0, 3).join(' ')}`);
      return outcomes;
    }
    for (const [machine, error] of failedDeploys) {
      const problems: Problem[] = [{ file: error.file, line: error.line, message: `deploy failed${error.phase ? ` (${error.phase})` : ''}: ${error.message}` }];
      if (error.details) problems.push({ message: error.details.trim() });
      fail(machine, 'the deploy failed', problems);
    }
    const deployed = bootable.filter((machine) => !failedDeploys.has(machine));
    log(`rebooting ${deployed.join(', ') || 'none'}, to see them start from their disk`);
    await Promise.all(deployed.map((machine) => sandbox.reboot(machine)));
    await Promise.all(
      deployed.map(async (machine) => {
        // Until startup is over, then the failed units with their last lines. Machine output is data: only printed.
        const read = await runProcess(
          'ssh',
          [
            ...sandbox.sshArguments(machine),
            'state=$(timeout 120 systemctl is-system-running --wait 2>&1); echo "state $state"; ' +
              'systemctl list-units --failed --plain --no-legend --no-pager | while read -r unit _; do echo "failed $unit"; journalctl -u "$unit" -b -n 3 --no-pager -q -o cat | sed "s/^/  /"; done',
          ],
          { check: false, timeout: 180_000 },
        );
        const state = /^state (.*)$/m.exec(read.stdout)?.[1] ?? '';
        const problems: Problem[] = [];
        for (const block of read.stdout.split(/^failed /m).slice(1)) {
          const [unit, ...journal] = block.split('\n').filter(Boolean);
          problems.push({ message: `${unit} failed at boot${journal.length ? `: ${journal.map((line) => line.trim()).join(' / ')}` : ''}` });
        }
        if (read.status !== 0 && !state) problems.push({ message: `could not be read after its reboot: ${read.stderr.trim().split('\n').pop() ?? ''}` });
        else if (state !== 'running' && problems.length === 0) problems.push({ message: `the system is ${state || 'in no known state'} after boot` });
        outcomes.set(
          machine,
          problems.length
            ? { ok: false, summary: `${problems.length} problem${problems.length === 1 ? '' : 's'} after deploy and reboot`, problems }
            : { ok: true, summary: 'deployed, rebooted, every unit healthy', problems },
        );
      }),
    );
  } catch (error) {
    for (const machine of bootable) if (!outcomes.has(machine)) fail(machine, `not booted: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    await sandbox.down(bootable);
  }
  return outcomes;
}
