import { readdirSync, statSync } from 'node:fs';
import { statSignature } from '../util/fs.ts';
import { HomecloudError, describeSystemError } from './errors.ts';
import { machineNamePattern, withDefaults, type Inventory, type InventoryEntry } from './inventory.ts';
import { readJsonFile } from './json.ts';
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
}

export async function loadModel(repo: RepoPaths, cache: DocumentCache = noCache): Promise<Model> {
  const settingsSignature = signatureOf(repo.settingsFile);
  const settings = settingsSignature
    ? await cache.document(repo.settingsFile, settingsSignature, async () => {
        const { validateSettings } = await import('./validate.ts');
        return validateSettings(readJsonFile(repo.settingsFile, repo.display(repo.settingsFile)));
      })
    : defaultSettings;
  const inventorySignature = signatureOf(repo.inventoryFile);
  const inventory = inventorySignature
    ? await cache.document(repo.inventoryFile, inventorySignature, async () => {
        const { validateInventory } = await import('./validate.ts');
        return validateInventory(readJsonFile(repo.inventoryFile, repo.display(repo.inventoryFile)));
      })
    : {};
  const machines = new Set(Object.keys(inventory));
  for (const name of machineDirectories(repo)) machines.add(name);
  return { repo, settings, inventory, machines: [...machines].sort() };
}

export function inventoryEntry(model: Model, machine: string): InventoryEntry {
  return model.inventory[machine] ?? withDefaults(machine);
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
  return entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => {
      if (!machineNamePattern.test(entry.name)) {
        throw new HomecloudError(
          `"${entry.name}" is not a machine name`,
          { file: repo.display(`${repo.machines}/${entry.name}`) },
          'a machine name is letters, digits, ".", "_" and "-", starting with a letter or digit: rename the directory',
        );
      }
      return entry.name;
    });
}

export function signatureOf(path: string): string | undefined {
  try {
    return statSignature(statSync(path));
  } catch {
    return undefined;
  }
}
