import { readFileSync } from 'node:fs';
import type { InventoryEntry } from '../load/inventory.ts';
import type { RepoPaths } from '../load/repo.ts';
import type { Fact } from './facts.ts';
import { checkProbeFacts } from './probe-values.ts';
import { childPath } from '../util/child-path.ts';

/** What `homecloud facts` stores for a machine under var/facts/. */
export interface ProbeRecord {
  /** The inventory entry the probe used: a changed entry makes the record stale. */
  inventory: InventoryEntry;
  probedAt: string;
  facts: Record<string, string>;
}

export function probeCachePath(repo: RepoPaths, machine: string): string {
  return childPath(repo.probeCache, `${machine}.json`);
}

/**
 * The cached probe facts, or none when absent, unreadable or made for another
 * inventory entry. A record with a value no real machine reports fails the
 * machine's build: it is never silently used or ignored.
 */
export function readProbeFacts(repo: RepoPaths, machine: string, entry: InventoryEntry): Fact[] | undefined {
  const path = probeCachePath(repo, machine);
  let record: ProbeRecord;
  try {
    record = JSON.parse(readFileSync(path, 'utf8')) as ProbeRecord;
  } catch {
    return undefined;
  }
  if (JSON.stringify(record.inventory) !== JSON.stringify(entry)) return undefined;
  const file = repo.display(path);
  const values = Object.fromEntries(Object.entries(record.facts ?? {}).map(([key, value]) => [key, String(value)]));
  checkProbeFacts(machine, values);
  return Object.entries(values).map(([key, value]) => ({ key, value, origin: 'probe' as const, file, secret: false }));
}
