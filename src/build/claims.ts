import { HomecloudError } from '../load/errors.ts';
import { hostingDeclarations, type BuildRecords } from '../load/hosted.ts';
import { shownName } from '../load/names.ts';

/**
 * What must be unique across the repository (FORMAT.md section 7): a value a declaration claims (an address,
 * a subnet), and the name of a machine a declaration makes. Checked over every machine's last build record
 * in every build, so that a collision keeps failing its machines until it is gone.
 */

/** A declaration that holds a value: the machine whose tree has it, and where it comes from. */
interface Holder {
  machine: string;
  declaration: string;
  file?: string;
}

/** The machines two declarations that take one value fail, each with one error naming every holder. */
export function collisionErrors(records: BuildRecords): Map<string, HomecloudError> {
  const holders = new Map<string, { kind: string; value: string; holders: Holder[] }>();
  const hold = (kind: string, value: string, holder: Holder) => {
    const key = JSON.stringify([kind, value]);
    const known = holders.get(key) ?? { kind, value, holders: [] };
    // The same declaration (two generators, two lines) holds a value once.
    if (!known.holders.some((other) => other.machine === holder.machine && other.declaration === holder.declaration)) known.holders.push(holder);
    holders.set(key, known);
  };
  for (const [machine, generated] of records) {
    for (const generator of Object.keys(generated).sort()) {
      for (const claim of generated[generator]!.claims ?? []) hold(claim.kind, claim.value, { machine, declaration: claim.declaration, file: claim.file });
    }
  }
  for (const { host, made } of hostingDeclarations(records)) hold('\0machine', made.name, { machine: host, declaration: made.declaration, file: made.file });

  const found = new Map<string, { message: string; hint: string }[]>();
  for (const { kind, value, holders: all } of holders.values()) {
    if (all.length < 2) continue;
    const sorted = all.sort((a, b) => (a.machine === b.machine ? (a.declaration < b.declaration ? -1 : 1) : a.machine < b.machine ? -1 : 1));
    const named = sorted.map((h) => `${h.declaration} of machine ${shownName(h.machine)}${h.file ? ` (${h.file})` : ''}`).join(' and by ');
    const hosted = kind === '\0machine';
    const collision = hosted
      ? { message: `machine ${shownName(value)} is hosted by ${named}`, hint: 'a machine has one host: give one of them another name, or remove one declaration' }
      : { message: `${kind} ${value} is claimed by ${named}`, hint: `give one of them another ${kind}: a claimed value is taken once in the repository` };
    // The hosted machine itself has no one host: it fails too.
    const involved = new Set([...sorted.map((h) => h.machine), ...(hosted ? [value] : [])]);
    for (const machine of involved) found.set(machine, [...(found.get(machine) ?? []), collision]);
  }
  const errors = new Map<string, HomecloudError>();
  for (const [machine, collisions] of found) {
    const message = collisions.length === 1 ? collisions[0]!.message : `declarations collide:\n  ${collisions.map((c) => c.message).join('\n  ')}`;
    errors.set(machine, new HomecloudError(message, undefined, [...new Set(collisions.map((c) => c.hint))].join('; ')));
  }
  return errors;
}
