import { existsSync } from 'node:fs';
import type { InventoryEntry } from '../load/inventory.ts';
import { readJsonFile } from '../load/json.ts';
import { signatureOf } from '../util/fs.ts';
import type { RepoPaths } from '../load/repo.ts';
import { jsonFacts, mergeFacts, readEnvFacts, type Fact, type Facts } from './facts.ts';
import { readProbeFacts } from './probe-cache.ts';
import { childPath } from '../util/child-path.ts';

/** Layer defaults: `usr/local/doc/examples/*.env` of each selected layer and of the machine. */
export const defaultsFile = /^\/usr\/local\/doc\/examples\/[^/]+\.env$/;

export interface DefaultsFile {
  /** The file to read. */
  path: string;
  /** Its name in messages. */
  file: string;
}

/** Layer defaults are shared by machines: each file is read once per process while unchanged. */
const defaultsRead = new Map<string, { signature: string | undefined; facts: Fact[] }>();

function readDefaults(file: DefaultsFile): Fact[] {
  const signature = signatureOf(file.path);
  const known = defaultsRead.get(file.path);
  if (known && known.signature === signature && signature !== undefined) return known.facts;
  const facts = readEnvFacts(file.path, file.file, 'default');
  defaultsRead.set(file.path, { signature, facts });
  return facts;
}

export function factFiles(repo: RepoPaths, machine: string): { json: string; env: string } {
  return { json: childPath(repo.facts, `${machine}.json`), env: childPath(repo.facts, `${machine}.env`) };
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
  const fromDefaults = defaults.flatMap((d) => readDefaults(d));
  const fromJson = existsSync(files.json) ? jsonFacts(readJsonFile(files.json, repo.display(files.json))) : [];
  const fromEnv = readEnvFacts(files.env, repo.display(files.env), 'env');
  const fromProbe = readProbeFacts(repo, machine, entry);
  return { facts: mergeFacts([self], fromDefaults, fromJson, fromEnv, fromProbe ?? []), probed: fromProbe !== undefined };
}
