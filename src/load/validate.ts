/** Schemas of the repository's JSON files. Loaded only when one of them changed: zod is slow to start. */
import { z } from 'zod';
import { HomecloudError } from './errors.ts';
import { machineNamePattern, withDefaults, type Inventory } from './inventory.ts';
import type { JsonDocument } from './json.ts';
import { defaultSettings, type Settings } from './settings.ts';

const settingsSchema = z.strictObject({
  stdlib: z.boolean().optional(),
  jobs: z.number().int().min(1).max(1024).optional(),
  generations: z.number().int().min(1).max(1000).optional(),
});

const inventoryEntrySchema = z.strictObject({
  host: z.string().min(1).optional(),
  user: z.string().min(1).optional(),
  options: z.array(z.string()).optional(),
});

const inventorySchema = z.record(
  z.string().regex(machineNamePattern, 'a machine name is letters, digits, ".", "_" and "-", starting with a letter or digit'),
  inventoryEntrySchema,
);

export function validateSettings(document: JsonDocument): Settings {
  const given = validateDocument(document, settingsSchema, (key) => `setting "${key}"`);
  return { ...defaultSettings, ...given };
}

export function validateInventory(document: JsonDocument): Inventory {
  const given = validateDocument(document, inventorySchema, (key) => `key "${key}" in a machine's entry`);
  const inventory: Inventory = {};
  for (const [name, entry] of Object.entries(given)) inventory[name] = withDefaults(name, entry);
  return inventory;
}

/** Validate a parsed document; the first problem becomes one located error. */
function validateDocument<T>(document: JsonDocument, schema: z.ZodType<T>, what: (key: string) => string): T {
  const result = schema.safeParse(document.value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!;
    const known = knownKeys(schema, path);
    throw new HomecloudError(`unknown ${what(key)}`, document.locateKey(path, key), known.length ? `known keys: ${known.join(', ')}` : undefined);
  }
  const subject = path.length ? `"${path.join('.')}": ` : '';
  throw new HomecloudError(`${subject}${issue.message}`, document.locate(path));
}

function knownKeys(schema: z.ZodType, path: (string | number)[]): string[] {
  let current: z.ZodType = schema;
  for (const step of path) {
    if (current instanceof z.ZodRecord) current = current.valueType as z.ZodType;
    else if (current instanceof z.ZodObject) current = current.shape[String(step)] as z.ZodType;
  }
  return current instanceof z.ZodObject ? Object.keys(current.shape) : [];
}
