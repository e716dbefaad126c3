import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { InventoryEntry } from '../load/inventory.ts';
import { readJsonFile } from '../load/json.ts';
import type { RepoPaths } from '../load/repo.ts';
import { jsonFacts, mergeFacts, readEnvFacts, type Fact, type Facts } from './facts.ts';
import { readProbeFacts } from './probe-cache.ts';

/** Layer defaults: `usr/local/doc/examples/*.env` of each selected layer and of the machine. */
export const defaultsFile = /^\/usr\/local\/doc\/examples\/[^/]+\.env$/;

export interface DefaultsFile {
  /** The file to read. */
  path: string;
  /** Its name in messages. */
  file: string;
}

export function factFiles(repo: RepoPaths, machine: string): { json: string; env: string } {
  return { json: join(repo.facts, `${machine}.json`), env: join(repo.facts, `${machine}.env`) };
}

export interface MachineFacts {
  facts: Facts;
  /** Whether probe facts from `homecloud facts` were available. */
  probed: boolean;
}

/** A machine's facts, lowest precedence first (FORMAT.md section 6). */
export function loadMachineFacts(repo: RepoPaths, machine: string, entry: InventoryEntry, defaults: DefaultsFile[]): MachineFacts {
  const files = factFiles(repo, machine);
  const self: Fact = { key: 'ENV_MACHINE', value: machine, origin: 'machine', secret: false };
  const fromDefaults = defaults.flatMap((d) => readEnvFacts(d.path, d.file, 'default'));
  const fromJson = existsSync(files.json) ? jsonFacts(readJsonFile(files.json, repo.display(files.json))) : [];
  const fromEnv = readEnvFacts(files.env, repo.display(files.env), 'env');
  const fromProbe = readProbeFacts(repo, machine, entry);
  return { facts: mergeFacts([self], fromDefaults, fromJson, fromEnv, fromProbe ?? []), probed: fromProbe !== undefined };
}
