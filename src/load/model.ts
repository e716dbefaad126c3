import { readdirSync, readFileSync, statSync } from 'node:fs';
import { statSignature } from '../util/fs.ts';
import { HomecloudError, describeSystemError } from './errors.ts';
import { entryProblem, withDefaults, type Inventory, type InventoryEntry } from './inventory.ts';
import type { Target } from '../transport/transport.ts';
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
}

export async function loadModel(repo: RepoPaths, cache: DocumentCache = noCache): Promise<Model> {
  const settingsSignature = signatureOf(repo.settingsFile);
  // Over the defaults: a document cached by an older homecloud lacks settings added since.
  const settings: Settings = settingsSignature
    ? {
        ...defaultSettings,
        ...(await cache.document(repo.settingsFile, settingsSignature, async () => {
          const { validateSettings } = await import('./validate.ts');
          return validateSettings(readJsonFile(repo.settingsFile, repo.display(repo.settingsFile)));
        })),
      }
    : defaultSettings;
  const inventorySignature = signatureOf(repo.inventoryFile);
  const given: Inventory = inventorySignature
    ? await cache.document(repo.inventoryFile, inventorySignature, async () => {
        const { validateInventory } = await import('./validate.ts');
        return validateInventory(readJsonFile(repo.inventoryFile, repo.display(repo.inventoryFile)));
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
  return { repo, settings, inventory, machines: [...machines].sort(), notInSandbox };
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
  if (!model.notInSandbox.has(machine)) return undefined;
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
  return sandboxProblem(model, machine) ?? machineDirectoryProblem(model.repo, machine) ?? entryProblem(machine, inventoryEntry(model, machine));
}

export function inventoryEntry(model: Model, machine: string): InventoryEntry {
  return model.inventory[machine] ?? withDefaults(machine);
}

/** How to reach a machine: its entry, and the machines it goes through (inventory.json's "via", checked to end). */
export function targetOf(model: Model, machine: string): Target {
  const entry = inventoryEntry(model, machine);
  return { machine, entry, ...(entry.via ? { via: targetOf(model, entry.via) } : {}) };
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

export function signatureOf(path: string): string | undefined {
  try {
    return statSignature(statSync(path));
  } catch {
    return undefined;
  }
}
