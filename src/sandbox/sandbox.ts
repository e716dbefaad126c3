import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HomecloudError } from '../load/errors.ts';
import type { Inventory, InventoryEntry } from '../load/inventory.ts';
import { isSandboxName, sandboxNameRule, shownName } from '../load/names.ts';
import { sshArguments } from '../transport/ssh.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { alive, run } from '../util/run.ts';
import { ensureImage, imageKey, type ImageProfile } from './image.ts';
import { boot, killAll, machineProcesses, machineProcessesOf, nspawnProcesses, nspawnProcessesOf, prepareMachine, stop, waitForSsh } from './machine.ts';
import { SandboxPaths } from './paths.ts';
import { ensureInotifyInstances } from './limits.ts';
import { checkPrerequisites } from './prerequisites.ts';
import { Pool, type CloneMethod } from './storage.ts';
import { hostRunsSystemd, machineCgroups, removeCgroups } from './cgroups.ts';

interface MachineRecord {
  index: number;
  address: string;
  pid: number;
  started: string;
  hostKey: string;
  /** The image profile it was cloned from, when not the base one. */
  image?: ImageProfile;
}

interface SandboxState {
  method?: CloneMethod;
  machines: Record<string, MachineRecord>;
}

export interface MachineStatus {
  name: string;
  address: string;
  state: 'running' | 'stopped';
  /** Seconds since it was started, when running. */
  uptime?: number;
  pid?: number;
}

/** Throwaway Debian machines with systemd as PID 1, for trying changes and for the end-to-end tests. */
export class Sandbox {
  readonly paths: SandboxPaths;
  private readonly pool: Pool;

  constructor(
    paths = new SandboxPaths(),
    private readonly log: (line: string) => void = () => {},
  ) {
    this.paths = paths;
    this.pool = new Pool(paths);
  }

  /** Boot the named machines (already running ones are left alone); resolves when all accept SSH. */
  async up(names: string[], options: { image?: ImageProfile } = {}): Promise<{ method: CloneMethod; started: string[] }> {
    const profile = options.image ?? 'base';
    checkPrerequisites();
    for (const name of names) {
      // Stricter than a repository's machine names: the name is the machine's host name for systemd-nspawn.
      if (!isSandboxName(name)) {
        throw new HomecloudError(
          `${shownName(name)} cannot be a sandbox machine: ${sandboxNameRule}`,
          undefined,
          'nothing was started; a repository machine of that name still builds, and deploys through inventory.json without --sandbox',
        );
      }
    }
    mkdirSync(this.paths.home, { recursive: true, mode: 0o700 });
    const state = this.read();
    const image = ensureImage(this.paths.imageCache, this.log, profile);
    const method = this.pool.open();
    state.method = method;
    const base = this.pool.ensureBase(image, imageKey(profile));
    this.ensureKey();
    this.ensureBridge();

    ensureInotifyInstances(names.filter((name) => !(state.machines[name] && alive(state.machines[name].pid))).length, this.log);

    const starting: { name: string; record: MachineRecord; log: string }[] = [];
    for (const name of names) {
      const known = state.machines[name];
      if (known && alive(known.pid)) continue;
      const index = known?.index ?? this.freeIndex(state);
      const address = this.paths.address(index);
      const root = this.pool.clone(base, name);
      const hostKey = prepareMachine(root, { name, address, publicKey: readFileSync(`${this.paths.key}.pub`, 'utf8') });
      const log = join(this.paths.logs, `${name}.console`);
      const pid = boot(root, name, this.paths.bridge, log, this.cgroups(name));
      const record: MachineRecord = { index, address, pid, started: new Date().toISOString(), hostKey, ...(profile === 'base' ? {} : { image: profile }) };
      state.machines[name] = record;
      starting.push({ name, record, log });
    }
    this.write(state);
    await Promise.all(starting.map(({ record, log }) => waitForSsh(record.address, record.pid, log)));
    return { method, started: starting.map((s) => s.name) };
  }

  /**
   * Reboot a machine on its own disk: a clean shutdown (the machine powers off
   * as systemd does at a reboot; a stalled shutdown shows in the time it takes,
   * and is cut off after `timeout`), then a boot of the same clone. Resolves
   * when it accepts SSH again, with how long the shutdown took.
   */
  async reboot(name: string, timeout = 120_000): Promise<{ shutdownMilliseconds: number }> {
    const state = this.read();
    const record = state.machines[name];
    if (!record)
      throw new HomecloudError(`there is no sandbox machine "${name}"`, undefined, 'homecloud sandbox ls lists them; homecloud sandbox up NAME starts one');
    const root = this.paths.machineDir(name);
    const started = Date.now();
    const pids = new Set([...nspawnProcesses(root), record.pid]);
    await Promise.all([...pids].filter((pid) => pidIsNspawn(pid)).map((pid) => stop(pid, timeout)));
    const shutdownMilliseconds = Date.now() - started;
    await killAll(machineProcesses(root));
    const log = join(this.paths.logs, `${name}.console`);
    record.pid = boot(root, name, this.paths.bridge, log, this.cgroups(name));
    record.started = new Date().toISOString();
    this.write(state);
    await waitForSsh(record.address, record.pid, log);
    return { shutdownMilliseconds };
  }

  /** Stop and remove machines (all with no names); also cleans what a crashed run left. Idempotent. */
  async down(names: string[] | 'all'): Promise<string[]> {
    const state = this.read();
    if (this.pool.mounted()) this.pool.method = state.method ?? 'btrfs snapshot';
    else if (existsSync(this.paths.poolImage) && (names === 'all' || names.some((n) => state.machines[n]))) this.pool.open();
    const targets = names === 'all' ? [...new Set([...Object.keys(state.machines), ...this.pool.machines()])] : names;
    // The machines power off all at once (one after the other, twenty took twenty shutdowns end to end), found in one
    // look at every process (a look per machine read every process's environment twenty times).
    const roots = targets.map((name) => this.paths.machineDir(name));
    const nspawns = nspawnProcessesOf(roots);
    await Promise.all(
      targets.map((name, i) => {
        const pids = new Set([...nspawns.get(roots[i]!)!, ...(state.machines[name] ? [state.machines[name].pid] : [])]);
        return Promise.all([...pids].filter((pid) => pidIsNspawn(pid)).map((pid) => stop(pid)));
      }),
    );
    const leftovers = machineProcessesOf(roots);
    for (const [i, name] of targets.entries()) {
      const root = roots[i]!;
      await killAll(leftovers.get(root)!);
      removeCgroups(this.cgroups(name));
      this.pool.remove(root);
      delete state.machines[name];
    }
    this.write(state);
    if (Object.keys(state.machines).length === 0) {
      this.removeBridge();
      this.pool.close();
    }
    return targets;
  }

  list(): MachineStatus[] {
    const state = this.read();
    return Object.entries(state.machines)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([name, record]) => {
        const running = pidIsNspawn(record.pid);
        return {
          name,
          address: record.address,
          state: running ? 'running' : 'stopped',
          ...(running ? { pid: record.pid, uptime: Math.round((Date.now() - Date.parse(record.started)) / 1000) } : {}),
        };
      });
  }

  /** ssh arguments (before the command) that reach a machine with the sandbox key and its recorded host key. */
  sshArguments(name: string): string[] {
    const record = this.read().machines[name];
    if (!record)
      throw new HomecloudError(`there is no sandbox machine "${name}"`, undefined, 'homecloud sandbox ls lists them; homecloud sandbox up NAME starts one');
    // Its own connection, not the deploys' shared one: an interactive session or a test's ssh stays apart.
    return sshArguments({ machine: name, entry: this.entryOf(record) }, { shared: false });
  }

  /** The machines as an inventory the deploy commands can use. */
  inventory(): Inventory {
    return this.inventoryOf(this.read());
  }

  private read(): SandboxState {
    try {
      return JSON.parse(readFileSync(this.paths.state, 'utf8')) as SandboxState;
    } catch {
      return { machines: {} };
    }
  }

  private write(state: SandboxState): void {
    mkdirSync(this.paths.home, { recursive: true, mode: 0o700 });
    writeFileAtomic(this.paths.state, JSON.stringify(state, null, 1) + '\n');
    writeFileAtomic(
      this.paths.knownHosts,
      Object.values(state.machines)
        .map((m) => m.hostKey)
        .join('\n') + '\n',
    );
    writeFileAtomic(this.paths.inventory, JSON.stringify(this.inventoryOf(state), null, 1) + '\n');
  }

  private inventoryOf(state: SandboxState): Inventory {
    const inventory: Inventory = {};
    for (const [name, record] of Object.entries(state.machines)) inventory[name] = this.entryOf(record);
    return inventory;
  }

  private entryOf(record: MachineRecord): InventoryEntry {
    return { host: record.address, user: 'root', options: sshOptions(this.paths) };
  }

  private cgroups(name: string): string[] {
    return hostRunsSystemd() ? [] : machineCgroups(`${this.paths.bridge}-${name}`);
  }

  private freeIndex(state: SandboxState): number {
    const used = new Set(Object.values(state.machines).map((m) => m.index));
    let index = 1;
    while (used.has(index)) index++;
    if (index > 200) throw new HomecloudError('a sandbox holds at most 200 machines');
    return index;
  }

  private ensureKey(): void {
    if (!existsSync(this.paths.key)) run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'homecloud-sandbox', '-f', this.paths.key]);
  }

  private ensureBridge(): void {
    const bridge = this.paths.bridge;
    if (run('ip', ['link', 'show', bridge], { check: false }).status !== 0) {
      // Two sandboxes on one subnet would reach each other's machines (and meet the wrong host keys).
      const addresses = JSON.parse(run('ip', ['-j', '-4', 'addr', 'show'], { check: false }).stdout || '[]') as { addr_info?: { local: string }[] }[];
      const taken = new Set(
        addresses.flatMap((link) =>
          (link.addr_info ?? [])
            .map((info) => /^10\.231\.(\d+)\./.exec(info.local)?.[1])
            .filter(Boolean)
            .map(Number),
        ),
      );
      this.paths.chooseSubnet(taken);
      run('ip', ['link', 'add', bridge, 'type', 'bridge']);
      run('ip', ['addr', 'add', `${this.paths.hostAddress}/24`, 'dev', bridge]);
    }
    run('ip', ['link', 'set', bridge, 'up']);
  }

  private removeBridge(): void {
    const bridge = this.paths.bridge;
    if (run('ip', ['link', 'show', bridge], { check: false }).status !== 0) return;
    // Veths a killed machine may have left on the bridge go first.
    const ports = JSON.parse(run('ip', ['-j', 'link', 'show', 'master', bridge], { check: false }).stdout || '[]') as { ifname: string }[];
    for (const port of ports) run('ip', ['link', 'delete', port.ifname], { check: false });
    run('ip', ['link', 'delete', bridge]);
  }
}

export function sshOptions(paths: SandboxPaths): string[] {
  return [
    '-i',
    paths.key,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    `UserKnownHostsFile=${paths.knownHosts}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    // As deploys wait (transport/ssh.ts): a machine's sshd may take seconds to answer while the host is loaded.
    'ConnectTimeout=10',
    '-o',
    'LogLevel=ERROR',
  ];
}

/** A recorded PID only counts while it is still a systemd-nspawn (PIDs are reused). */
function pidIsNspawn(pid: number): boolean {
  if (!alive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'systemd-nspawn';
  } catch {
    return false;
  }
}
