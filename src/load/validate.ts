/** Schemas of the repository's JSON files. Loaded only when one of them changed: zod is slow to start. */
import { isAbsolute, resolve } from 'node:path';
import { findNodeAtLocation } from 'jsonc-parser';
import { z } from 'zod';
import { HomecloudError, type Location } from './errors.ts';
import { addressProblem, withDefaults, type Inventory } from './inventory.ts';
import { machineNameRule, namePattern, nameProblem } from './names.ts';
import type { JsonDocument } from './json.ts';
import { defaultSettings, type Settings } from './settings.ts';

const settingsSchema = z.strictObject({
  stdlib: z.boolean().optional(),
  jobs: z.number().int().min(1).max(1024).optional(),
  generations: z.number().int().min(1).max(1000).optional(),
  readOutside: z.array(z.string().min(1)).optional(),
});

const inventoryEntrySchema = z.strictObject({
  host: z.string().min(1).optional(),
  user: z.string().min(1).optional(),
  options: z.array(z.string()).optional(),
  via: z.string().min(1).optional(),
});

const inventorySchema = z.record(z.string().regex(namePattern), inventoryEntrySchema);

type Path = (string | number)[];

/** A place in a document in words: what it is, what it must be, and how to fix it. */
interface Place {
  subject: string;
  must: string;
  hint?: string;
}

/** The words for every place of homecloud.json; zod's own messages would not name the setting or say what it takes. */
function settingsPlace(path: Path): Place {
  const [key, index] = path;
  if (key === undefined)
    return {
      subject: 'homecloud.json',
      must: 'must hold a JSON object of settings',
      hint: 'write {"setting": value, ...}, e.g. {"stdlib": true}, or {} for the defaults',
    };
  if (key === 'readOutside' && index !== undefined) {
    return {
      subject: `item ${Number(index) + 1} of the setting "readOutside"`,
      must: 'must be an absolute directory path in quotes',
      hint: 'e.g. "readOutside": ["/etc/ssl/homecloud"]',
    };
  }
  const words: Record<keyof Settings, Omit<Place, 'subject'>> = {
    stdlib: {
      must: 'must be true or false',
      hint: "true uses homecloud's standard layers for names the repository lacks; false for a repository that carries its own base layer",
    },
    jobs: { must: 'must be a whole number from 1 to 1024', hint: 'how many machines are worked on at once (default 16)' },
    generations: { must: 'must be a whole number from 1 to 1000', hint: 'how many generations each machine keeps for rollback (default 5)' },
    readOutside: { must: 'must be a list of absolute directory paths', hint: 'e.g. "readOutside": ["/etc/ssl/homecloud"]' },
  };
  // Unknown keys are reported before this is asked.
  return { subject: `the setting "${key}"`, ...words[key as keyof Settings] };
}

/** The words for every place of inventory.json. */
function inventoryPlace(path: Path): Place {
  const [machine, key, index] = path;
  if (machine === undefined) {
    return {
      subject: 'inventory.json',
      must: 'must hold a JSON object of machines',
      hint: 'write {"<machine>": {"host": "...", "user": "...", "options": [...]}, ...}, e.g. {"nas": {"host": "192.168.1.20"}}',
    };
  }
  const of = `of machine "${machine}"`;
  switch (key) {
    case undefined:
      return {
        subject: `the entry ${of}`,
        must: 'must be an object',
        hint: 'write {"host": "...", "user": "...", "options": [...]}, each key optional, or {} for the defaults',
      };
    case 'host':
      return {
        subject: `the host ${of}`,
        must: 'must be a host name or address in quotes',
        hint: 'e.g. "host": "192.168.1.20"; leave "host" out to use the machine name',
      };
    case 'user':
      return { subject: `the user ${of}`, must: 'must be a user name in quotes', hint: 'e.g. "user": "admin"; leave "user" out to log in as root' };
    case 'via':
      return {
        subject: `the via ${of}`,
        must: 'must be the name of another machine in quotes',
        hint: 'e.g. "via": "bastion": ssh reaches this machine through that one',
      };
    default:
      if (index !== undefined)
        return {
          subject: `option ${Number(index) + 1} ${of}`,
          must: 'must be a string',
          hint: 'options are ssh arguments, one string each, e.g. "options": ["-p", "2222"]',
        };
      return {
        subject: `the options ${of}`,
        must: 'must be a list of strings',
        hint: 'options are ssh arguments, one string each, e.g. "options": ["-p", "2222"]',
      };
  }
}

export function validateSettings(document: JsonDocument): Settings {
  const given = validateDocument(document, settingsSchema, settingsPlace, (quotedKey) => `unknown setting ${quotedKey}`);
  const readOutside: string[] = [];
  (given.readOutside ?? []).forEach((dir, index) => {
    const where = valueLocation(document, ['readOutside', index]);
    const hint = 'readOutside lists absolute directories, e.g. ["/etc/ssl/homecloud"], that "!" links and linked templates may read from';
    if (!isAbsolute(dir)) throw new HomecloudError(`${JSON.stringify(dir)} in readOutside is not an absolute path`, where, hint);
    // Compared after normalizing: "/etc/ssl/" and "/etc/ssl" are one directory.
    const normal = resolve(dir);
    if (readOutside.includes(normal)) throw new HomecloudError(`${JSON.stringify(dir)} appears twice in readOutside`, where, 'keep one of them');
    readOutside.push(normal);
  });
  return { ...defaultSettings, ...given, readOutside };
}

const addressHints = {
  host: 'write only the host name or address; ssh arguments go in "options", e.g. ["-p", "2222"]',
  user: 'write only the login name; ssh arguments go in "options", e.g. ["-p", "2222"]',
};

export function validateInventory(document: JsonDocument): Inventory {
  const given = validateDocument(
    document,
    inventorySchema,
    inventoryPlace,
    (quotedKey, path) => `unknown key ${quotedKey} in the entry of machine "${path[0]}"`,
  );
  const inventory: Inventory = {};
  for (const [name, entry] of Object.entries(given)) {
    for (const key of ['host', 'user'] as const) {
      const value = entry[key];
      const problem = value === undefined ? undefined : addressProblem(value);
      if (problem) throw new HomecloudError(`the ${key} of machine "${name}" ${problem}`, valueLocation(document, [name, key]), addressHints[key]);
    }
    inventory[name] = withDefaults(name, entry);
  }
  // A hop names another machine of this file, and the hops end somewhere.
  for (const name of Object.keys(inventory)) {
    const seen = [name];
    for (let via = inventory[name]!.via; via !== undefined; via = inventory[via]?.via) {
      const where = valueLocation(document, [seen[seen.length - 1]!, 'via']);
      if (!inventory[via])
        throw new HomecloudError(
          `machine "${seen[seen.length - 1]}" goes via "${via}", which inventory.json does not list`,
          where,
          `add "${via}" to inventory.json, with its host`,
        );
      if (seen.includes(via))
        throw new HomecloudError(
          `machine "${name}" goes via ${[...seen.slice(1), via].map((m) => `"${m}"`).join(' via ')}: a loop`,
          where,
          'the last machine of a chain of "via" must be reachable directly',
        );
      seen.push(via);
    }
  }
  return inventory;
}

/** Validate a parsed document; the first problem becomes one located error in plain words. */
function validateDocument<T>(
  document: JsonDocument,
  schema: z.ZodType<T>,
  place: (path: Path) => Place,
  unknownKey: (quotedKey: string, path: Path) => string,
): T {
  const result = schema.safeParse(document.value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!;
    const known = knownKeys(schema, path);
    throw new HomecloudError(
      unknownKey(JSON.stringify(key), path),
      document.locateKey(path, key),
      known.length ? `known keys: ${known.join(', ')}` : undefined,
    );
  }
  if (issue.code === 'invalid_key') {
    // Only the machine names of inventory.json are checked keys.
    const key = String(path[path.length - 1]);
    throw new HomecloudError(
      `${JSON.stringify(key)} in ${document.file} is not a machine name`,
      document.locateKey(path.slice(0, -1), key),
      `it ${nameProblem(key) ?? 'is not one'}; ${machineNameRule}: rename the entry`,
    );
  }
  // Every other issue is a value of the wrong type or out of range: say what the place takes.
  const { subject, must, hint } = place(path);
  const node = document.tree && findNodeAtLocation(document.tree, path);
  const where = valueLocation(document, path);
  if (node?.type === 'string' && node.value === '') throw new HomecloudError(`${subject} is empty`, where, hint);
  throw new HomecloudError(`${subject} ${must}, not ${node ? shown(document, node) : 'missing'}`, where, hint);
}

/** Where the value at `path` starts (JsonDocument.locate points at an object member's key). */
function valueLocation(document: JsonDocument, path: Path): Location {
  const node = document.tree && findNodeAtLocation(document.tree, path);
  return node ? document.at(node.offset) : document.locate(path);
}

/** A value as the user wrote it, short. */
function shown(document: JsonDocument, node: NonNullable<ReturnType<typeof findNodeAtLocation>>): string {
  if (node.type === 'array') return 'a list';
  if (node.type === 'object') return 'an object';
  const text = document.text.slice(node.offset, node.offset + node.length);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

function knownKeys(schema: z.ZodType, path: (string | number)[]): string[] {
  let current: z.ZodType = schema;
  for (const step of path) {
    if (current instanceof z.ZodRecord) current = current.valueType as z.ZodType;
    else if (current instanceof z.ZodObject) current = current.shape[String(step)] as z.ZodType;
  }
  return current instanceof z.ZodObject ? Object.keys(current.shape) : [];
}
