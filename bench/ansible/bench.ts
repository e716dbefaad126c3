// npm run bench -- ansible: homecloud against Ansible, deploying one desired
// state to three fresh sandbox machines. Each tool gets machines cloned anew
// from the same base image; after each tool's runs, what it left on the
// machines must be what homecloud left, path for path, or the bench fails.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SandboxPaths } from '../../src/sandbox/paths.ts';
import { Sandbox, sshOptions } from '../../src/sandbox/sandbox.ts';
import { controlDir } from '../../src/transport/ssh.ts';
import { median, timeProcessOutput, type Row } from '../stats.ts';
import { differences, machineState, type MachineState } from './fairness.ts';
import { homecloudSource, writeHomecloudRepository } from './homecloud.ts';
import { ansibleSource, playbookName, transfers, writeAnsibleConnection, writeAnsibleProject, type Transfer } from './playbook.ts';
import { changedContent, desiredState, type DesiredState } from './state.ts';

const cli = resolve(import.meta.dirname, '../../bin/homecloud.cjs');

interface Tool {
  name: string;
  /** Before a first run: forget what earlier runs left on this side (homecloud's build output). */
  forget?: () => void;
  /** One deploy to every machine; returns its wall time and output. */
  deploy: () => { milliseconds: number; stdout: string };
  /** Whether a run's output says it changed nothing. */
  unchanged: (stdout: string) => boolean;
}

interface Series {
  tool: string;
  first: number[];
  noChange: number[];
  oneChange: number[];
}

type Machines = Record<string, MachineState>;

/** Debian's ansible package, installed when missing (the bench's own prerequisite; the tests do not need it). */
function ensureAnsible(): void {
  if (spawnSync('ansible-playbook', ['--version'], { stdio: 'ignore' }).status === 0) return;
  console.log("Installing Debian's ansible package...");
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => spawnSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', 'ansible'], { stdio: 'inherit', env }).status === 0;
  if (install()) return;
  spawnSync('apt-get', ['update', '-q'], { stdio: 'inherit', env });
  if (!install()) throw new Error('cannot install ansible: apt-get install ansible failed');
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** What every machine should show after the one-change runs: the first state with the changed file's new content. */
function afterChanges(first: Machines, state: DesiredState, content: string): Machines {
  const path = state.changeTarget.slice(1);
  const replaced: Machines = {};
  for (const [machine, s] of Object.entries(first)) {
    // A file's line: `f <mode> <owner> <path> <sha256>`.
    replaced[machine] = {
      ...s,
      paths: s.paths.map((line) => (line.startsWith(`f `) && line.split(' ')[3] === path ? `${line.slice(0, -64)}${sha256(content)}` : line)),
    };
  }
  return replaced;
}

/** Fail the bench, loudly, when a tool left something else than the reference. */
function compare(what: string, reference: Machines, actual: Machines): void {
  const problems = Object.keys(reference).flatMap((machine) => differences(reference[machine]!, actual[machine]!).map((line) => `${machine}: ${line}`));
  if (problems.length) {
    throw new Error(
      `\nFAIRNESS CHECK FAILED: ${what} differs from homecloud's (- homecloud, + this tool):\n${problems.slice(0, 60).join('\n')}${problems.length > 60 ? `\n... and ${problems.length - 60} more` : ''}`,
    );
  }
}

export async function benchAnsible(runs = 5, only: Transfer[] = transfers): Promise<Row[]> {
  ensureAnsible();
  const work = mkdtempSync(join(tmpdir(), 'homecloud-bench-ansible-'));
  const sockets = mkdtempSync(join(tmpdir(), 'hcab-'));
  const paths = new SandboxPaths(join(work, 'sandbox'));
  const sandbox = new Sandbox(paths);
  const state = desiredState();
  const repo = join(work, 'homecloud');
  const project = join(work, 'ansible');
  writeHomecloudRepository(repo, state);
  writeAnsibleProject(project, state);
  const changeFiles = [homecloudSource(repo, state, state.changeTarget), ansibleSource(project, state, state.changeTarget)];
  const original = readFileSync(changeFiles[0]!, 'utf8');

  const homecloud: Tool = {
    name: 'homecloud',
    forget: () => rmSync(join(repo, 'var'), { recursive: true, force: true }),
    deploy: () => timeProcessOutput(process.execPath, [cli, '-C', repo, '--sandbox', 'deploy'], { env: { ...process.env, HOMECLOUD_SANDBOX: paths.home } }),
    unchanged: (stdout) => stdout.includes('Nothing to do'),
  };
  const ansible = (transfer: Transfer): Tool => ({
    name: `ansible ${transfer}`,
    deploy: () =>
      timeProcessOutput('ansible-playbook', [playbookName(transfer)], {
        cwd: project,
        env: { ...process.env, ANSIBLE_CONFIG: join(project, 'ansible.cfg'), ANSIBLE_NOCOLOR: '1' },
      }),
    unchanged: (stdout) => {
      const recap = [...stdout.matchAll(/ changed=(\d+) /g)];
      return recap.length === state.machines.length && recap.every((m) => m[1] === '0');
    },
  });

  /** Both tools' master connections end before their machines go (they would linger on a peer that vanished). */
  const closeConnections = () => {
    for (const { host } of Object.values(sandbox.inventory())) {
      for (const dir of [controlDir(), sockets]) spawnSync('ssh', ['-O', 'exit', '-o', `ControlPath=${dir}/%C`, `root@${host}`], { stdio: 'ignore' });
    }
  };
  /** Every machine cloned anew from the base image, with new host keys. */
  const freshMachines = async () => {
    closeConnections();
    await sandbox.down(state.machines);
    await sandbox.up(state.machines);
    const hosts = Object.fromEntries(Object.entries(sandbox.inventory()).map(([machine, entry]) => [machine, entry.host]));
    writeAnsibleConnection(project, { hosts, sshOptions: sshOptions(paths), controlDir: sockets });
  };
  const capture = (): Machines => Object.fromEntries(state.machines.map((machine) => [machine, machineState(sandbox.sshArguments(machine), state)]));
  const change = (run: number) => {
    for (const file of changeFiles) writeFileSync(file, changedContent(original, run));
  };

  let reference: Machines | undefined;
  const series = async (tool: Tool): Promise<Series> => {
    const result: Series = { tool: tool.name, first: [], noChange: [], oneChange: [] };
    process.stdout.write(`${tool.name}: first runs`);
    let first: Machines = {};
    for (let i = 0; i < runs; i++) {
      await freshMachines();
      tool.forget?.();
      result.first.push(tool.deploy().milliseconds);
      first = capture();
      reference ??= first;
      compare(`what ${tool.name} deployed in its first run ${i + 1}`, reference, first);
      for (const [machine, s] of Object.entries(first)) {
        const down = s.units.filter((line) => !line.endsWith(' active'));
        if (down.length) throw new Error(`${tool.name} left services on ${machine} not running:\n${down.join('\n')}`);
      }
      process.stdout.write('.');
    }
    process.stdout.write(' no change');
    for (let i = 0; i < runs; i++) {
      const run = tool.deploy();
      if (!tool.unchanged(run.stdout)) throw new Error(`${tool.name} changed something in a run with nothing to change:\n${run.stdout}`);
      result.noChange.push(run.milliseconds);
      process.stdout.write('.');
    }
    process.stdout.write(' one change');
    try {
      for (let i = 0; i < runs; i++) {
        change(i);
        result.oneChange.push(tool.deploy().milliseconds);
        process.stdout.write('.');
      }
    } finally {
      for (const file of changeFiles) writeFileSync(file, original);
    }
    const after = capture();
    compare(`what ${tool.name} left after the one-change runs`, afterChanges(reference!, state, changedContent(original, runs - 1)), after);
    // Each change reloaded (or restarted) the service that reads the file, once, and nothing else.
    const service = state.changeTarget.split('/')[4]!;
    for (const machine of state.machines) {
      for (const s of state.services) {
        const loads = after[machine]!.loads[s.name]! - first[machine]!.loads[s.name]!;
        const expected = s.name === service ? runs : 0;
        if (loads !== expected)
          throw new Error(`${tool.name} on ${machine}: ${s.name} loaded its configuration ${loads} times in ${runs} one-change runs, not ${expected}`);
      }
    }
    console.log(' ok');
    return result;
  };

  try {
    const results: Series[] = [];
    for (const tool of [homecloud, ...only.map(ansible)]) results.push(await series(tool));
    console.log(
      `Fairness check passed: every tool left the same ${reference![state.machines[0]!]!.paths.length} paths under /usr/local (type, mode, owner, sha256 or link target) and the same running services on each machine.`,
    );
    return report(state, runs, results);
  } finally {
    closeConnections();
    await sandbox.down('all');
    rmSync(work, { recursive: true, force: true });
    rmSync(sockets, { recursive: true, force: true });
  }
}

function report(state: DesiredState, runs: number, results: Series[]): Row[] {
  const ours = results[0]!;
  const files = state.files.length + state.templates.length + state.links.length;
  const rows: { name: string; key: 'first' | 'noChange' | 'oneChange'; target?: number }[] = [
    { name: 'first run, fresh machines', key: 'first' },
    { name: 'no change', key: 'noChange', target: 10 },
    { name: 'one file changed, its service reloads', key: 'oneChange', target: 10 },
  ];
  const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const columns = ['run', ...results.map((r) => r.tool), 'ansible / homecloud', 'target'];
  const table = rows.map((row) => {
    const medians = results.map((r) => median(r[row.key]));
    const ratio = Math.min(...medians.slice(1)) / medians[0]!;
    const verdict = row.target ? `>= ${row.target}x ${ratio >= row.target ? 'ok' : 'MISSED'}` : '';
    return [row.name, ...medians.map(seconds), `${ratio.toFixed(1)}x`, verdict];
  });
  const widths = columns.map((c, i) => Math.max(c.length, ...table.map((line) => line[i]!.length)));
  console.log(
    `\nhomecloud against Ansible (${state.machines.length} machines, ${files} files each of which ${state.templates.length} templates, ${state.services.length} services; median of ${runs} runs; ratio against the faster Ansible)`,
  );
  for (const line of [columns, ...table]) console.log(line.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  '));
  return rows.map((row) => ({ name: `homecloud, ${row.name}`, median: median(ours[row.key]), runs }));
}
