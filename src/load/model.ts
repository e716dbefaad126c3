import { readdirSync, readFileSync } from 'node:fs';
import { signatureOf } from '../util/fs.ts';
import { HomecloudError, describeSystemError } from './errors.ts';
import { entryProblem, identityOptions, withDefaults, type Inventory, type InventoryEntry } from './inventory.ts';
import type { Target } from '../transport/transport.ts';
import { hostedMachines, knownHostsFile, type HostedMachine, type HostedMachines, type RecordReader } from './hosted.ts';
import { readJsonFile } from './json.ts';
import { machineDirectoryProblem } from './layers.ts';
import { isSandboxName, sandboxNameRule, shownName } from './names.ts';
import type { RepoPaths } from './repo.ts';
import { defaultSettings, type Settings } from './settings.ts';

/** Remembers parsed documents while their files are unchanged (validation loads zod, which is slow to start). */
export interface DocumentCache {
  document<T>(path: string, signature: string, parse: () => Promise<T>): Promise<T>;
}

const noCache: DocumentCache = { document: (_path, _signature, parse) => parse() };

/** The repository as homecloud sees it before building: settings, inventory, machines. */
export interface Model {
  repo: RepoPaths;
  settings: Settings;
  inventory: Inventory;
  /** Every machine: directories under machines/ and inventory entries, sorted. */
  machines: string[];
  /** With --sandbox: machines the sandbox has not booted (never reached through inventory.json instead). */
  notInSandbox: Set<string>;
  /** Machines the repository's machines host (containers), from their last build records; a build brings it up to date. */
  hosted: HostedMachines;
}

/** `readRecord` reads the machines' build records (a builder serves those it wrote from memory). */
export async function loadModel(repo: RepoPaths, cache: DocumentCache = noCache, readRecord?: RecordReader): Promise<Model> {
  const settingsSignature = signatureOf(repo.settingsFile);
  // Over the defaults: a document cached by an older homecloud lacks settings added since.
  const settings: Settings = settingsSignature
    ? {
        ...defaultSettings,
        ...(await cache.document(repo.settingsFile, settingsSignature, async () => {
          const { validateSettings } = await import('./validate.ts');
          return validateSettings(readJsonFile(repo.settingsFile, repo.display(repo.settingsFile), { comments: true }));
        })),
      }
    : defaultSettings;
  const inventorySignature = signatureOf(repo.inventoryFile);
  const given: Inventory = inventorySignature
    ? await cache.document(repo.inventoryFile, inventorySignature, async () => {
        const { validateInventory } = await import('./validate.ts');
        return validateInventory(readJsonFile(repo.inventoryFile, repo.display(repo.inventoryFile), { comments: true }));
      })
    : {};
  const machines = new Set(Object.keys(given));
  for (const name of machineDirectories(repo)) machines.add(name);
  // A copy: the cached document must not take the sandbox's entries. The sandbox reaches the repository's machines only.
  const inventory: Inventory = { ...given };
  const notInSandbox = new Set<string>();
  if (repo.sandboxInventory) {
    const sandbox = sandboxEntries(repo.sandboxInventory);
    for (const name of machines) {
      if (sandbox[name]) inventory[name] = sandbox[name];
      else notInSandbox.add(name);
    }
  }
  const sorted = [...machines].sort();
  return { repo, settings, inventory, machines: sorted, notInSandbox, hosted: hostedMachines(repo, sorted, readRecord) };
}

/** The machines a sandbox has booted (homecloud sandbox up), as inventory entries. */
function sandboxEntries(path: string): Inventory {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Inventory;
  } catch {
    throw new HomecloudError('no sandbox machines are running', { file: path }, 'start them with: homecloud sandbox up NAME...');
  }
}

/** The error for a machine that --sandbox cannot reach, if it is one. */
export function sandboxProblem(model: Model, machine: string): HomecloudError | undefined {
  // A machine the sandbox has not booted but one of its machines hosts is reached through that one.
  if (!model.notInSandbox.has(machine) || hostOf(model, machine)) return undefined;
  if (!isSandboxName(machine)) {
    return new HomecloudError(
      `${shownName(machine)} cannot run in the sandbox: ${sandboxNameRule}`,
      undefined,
      'it still builds, and deploys without --sandbox (through inventory.json)',
    );
  }
  return new HomecloudError(`${machine} is not running in the sandbox`, undefined, `start it with: homecloud sandbox up ${machine}`);
}

/**
 * The error for a machine that cannot be reached, if it is one: not in the
 * sandbox (--sandbox), a directory that cannot be used, or no host ssh can
 * take (a machine named "-x" with no host in inventory.json). Only that
 * machine fails; nothing has been run for it.
 */
export function reachProblem(model: Model, machine: string): HomecloudError | undefined {
  return (
    loopProblem(model, machine) ??
    sandboxProblem(model, machine) ??
    machineDirectoryProblem(model.repo, machine) ??
    entryProblem(machine, inventoryEntry(model, machine)) ??
    hostProblem(model, machine)
  );
}

/** How ssh reaches a machine: a machine its host reaches (see hostOf), else its inventory entry, else the defaults. */
export function inventoryEntry(model: Model, machine: string): InventoryEntry {
  const hosted = hostOf(model, machine);
  return hosted ? hostedEntry(model, machine, hosted) : (model.inventory[machine] ?? withDefaults(machine));
}

/**
 * How to reach a machine: its entry, and the machines it goes through (inventory.json's "via", or its host),
 * checked to end (reachProblem). A hosted machine's host key is learned through its host (learnHostKeys).
 */
export function targetOf(model: Model, machine: string): Target {
  const entry = inventoryEntry(model, machine);
  const hosted = hostOf(model, machine);
  return {
    machine,
    entry,
    ...(entry.via ? { via: targetOf(model, entry.via) } : {}),
    ...(hosted ? { hostKey: { path: hosted.hostKeyPath, knownHosts: knownHostsFile(model.repo, machine) } } : {}),
  };
}

/**
 * The machine that hosts `machine` when it is reached through that one (FORMAT.md section 8): one of the
 * repository's machines declares it (a generator's `machine` line), it has no inventory entry of its own
 * (in the sandbox: the sandbox did not boot it; inventory.json is never used there), and the machines it is
 * reached through do not lead back to it.
 */
export function hostOf(model: Model, machine: string): HostedMachine | undefined {
  const hosted = hostedOnly(model, machine);
  return hosted && !hopLoop(model, machine) ? hosted : undefined;
}

function hostedOnly(model: Model, machine: string): HostedMachine | undefined {
  const hosted = model.hosted.get(machine);
  return hosted && (model.notInSandbox.has(machine) || !model.inventory[machine]) ? hosted : undefined;
}

/** The machines that `machine` is reached through which lead back to one of them, if they do (its host's host, a "via", ...). */
export function hopLoop(model: Model, machine: string): string[] | undefined {
  const chain = [machine];
  for (let hop = hopOf(model, machine); hop !== undefined; hop = hopOf(model, hop)) {
    const at = chain.indexOf(hop);
    if (at >= 0) return chain.slice(at);
    chain.push(hop);
  }
  return undefined;
}

function hopOf(model: Model, machine: string): string | undefined {
  return hostedOnly(model, machine)?.host ?? model.inventory[machine]?.via;
}

export function loopProblem(model: Model, machine: string): HomecloudError | undefined {
  const loop = hopLoop(model, machine);
  if (!loop) return undefined;
  return new HomecloudError(
    `${shownName(machine)} cannot be reached: ${[...loop, loop[0]!].map(shownName).join(' is reached through ')}`,
    undefined,
    'a machine is reached through its host (a generator\'s machine line) or its "via" (inventory.json): give one of them an inventory entry that is reached directly, or remove a declaration',
  );
}

/** A hosted machine cannot be reached when its host cannot. */
function hostProblem(model: Model, machine: string): HomecloudError | undefined {
  const hosted = hostOf(model, machine);
  const problem = hosted && reachProblem(model, hosted.host);
  if (!hosted || !problem) return undefined;
  return new HomecloudError(
    `it is reached through its host ${shownName(hosted.host)}, which cannot be reached: ${problem.message}`,
    problem.where,
    problem.hint,
  );
}

/**
 * A hosted machine's entry: root at the address its host gave, through its host, with the host key its host
 * holds for it (written to var/known_hosts/<machine> before each command reaches it) and checked strictly.
 * The host's identity options come along: a container is usually given its host's keys.
 */
function hostedEntry(model: Model, machine: string, hosted: HostedMachine): InventoryEntry {
  const known = ['-o', `UserKnownHostsFile=${knownHostsFile(model.repo, machine)}`, '-o', 'StrictHostKeyChecking=yes'];
  return { host: hosted.address, user: 'root', options: [...identityOptions(inventoryEntry(model, hosted.host).options), ...known], via: hosted.host };
}

/** The machines a command works on: all of them, or the named ones (each must exist). */
export function selectMachines(model: Model, names: string[]): string[] {
  if (names.length === 0) return model.machines;
  for (const name of names) {
    if (!model.machines.includes(name)) {
      throw new HomecloudError(
        `unknown machine "${name}"`,
        undefined,
        model.machines.length ? `known machines: ${model.machines.join(', ')}` : 'create machines/<name>/ or add it to inventory.json',
      );
    }
  }
  return [...new Set(names)];
}

function machineDirectories(repo: RepoPaths): string[] {
  let entries;
  try {
    entries = readdirSync(repo.machines, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new HomecloudError(`cannot read: ${describeSystemError(error)}`, { file: repo.display(repo.machines) });
  }
  // Every directory is a machine, whatever its name: one that cannot be used fails when that machine is built (machineDirectoryProblem).
  return entries.filter((entry) => entry.isDirectory()).map((entry) => entry.name);
}
