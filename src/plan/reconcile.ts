import type { Manifest, ManifestEntries } from '../build/manifest.ts';
import { sameEntry } from '../build/manifest.ts';
import type { TriggerDeclaration } from '../build/declared.ts';
import { unitOf, unitReferences, wantedUnit } from './units.ts';

export type UnitAction = 'stop' | 'restart' | 'reload-or-restart' | 'reload' | 'start';

export interface PlannedUnit {
  unit: string;
  action: UnitAction;
  /** Why, in words: "/usr/local/opt/nginx/conf/main.nginx changed (BindReadOnlyPaths of nginx.service)". */
  reasons: string[];
}

export interface Plan {
  added: string[];
  changed: string[];
  removed: string[];
  daemonReload: boolean;
  units: PlannedUnit[];
  packages: { install: string[]; purge: string[] };
}

/** A stronger action replaces a weaker one for the same unit. */
export const actionStrength: Record<UnitAction, number> = { reload: 1, 'reload-or-restart': 2, restart: 3, start: 4, stop: 5 };

/**
 * What deploying `next` over `previous` changes, and which units to act on
 * (DESIGN.md "Reconcile"). `read` gives the text of a file of the new tree;
 * `readPrevious` of the old one (for what units read before).
 */
export function reconcile(
  previous: Manifest | undefined,
  next: Manifest,
  read: (path: string) => string,
  triggers: TriggerDeclaration[] = [],
): Plan {
  const before: ManifestEntries = previous?.entries ?? {};
  const after = next.entries;
  const added = Object.keys(after).filter((path) => !before[path] && after[path]!.type !== 'dir').sort();
  const changed = Object.keys(after).filter((path) => before[path] && !sameEntry(before[path], after[path]) && !(before[path]!.type === 'dir' && after[path]!.type === 'dir')).sort();
  const removed = Object.keys(before).filter((path) => !after[path] && before[path]!.type !== 'dir').sort();
  const touched = [...added, ...changed];

  const units = new Map<string, PlannedUnit>();
  const act = (unit: string, action: UnitAction, reason: string) => {
    const known = units.get(unit);
    if (!known) units.set(unit, { unit, action, reasons: [reason] });
    else {
      if (actionStrength[action] > actionStrength[known.action]) known.action = action;
      if (!known.reasons.includes(reason)) known.reasons.push(reason);
    }
  };

  let daemonReload = false;
  const unitTexts = new Map<string, string>();
  for (const path of Object.keys(after)) {
    const owner = unitOf(path);
    if (owner && after[path]!.type === 'file') unitTexts.set(owner.unit, `${unitTexts.get(owner.unit) ?? ''}\n${read(path)}`);
  }

  for (const path of removed) {
    const owner = unitOf(path);
    if (owner && !owner.dropIn) act(owner.unit, 'stop', `${path} removed`);
    if (owner) daemonReload = true;
    const wanted = wantedUnit(path);
    if (wanted) act(wanted, 'stop', `${path} removed`);
  }
  // Units whose own file is new: nothing of theirs is running yet.
  const newUnits = new Set(added.map((path) => unitOf(path)).filter((owner) => owner && !owner.dropIn).map((owner) => owner!.unit));
  for (const path of touched) {
    const owner = unitOf(path);
    if (owner) {
      daemonReload = true;
      // A new unit file starts nothing by itself; a changed one restarts the unit (its running instances, for a template), and so does a drop-in of a unit that was there.
      if (changed.includes(path) || (owner.dropIn && !newUnits.has(owner.unit))) act(instances(owner.unit), 'restart', `${path} ${changed.includes(path) ? 'changed' : 'added'}`);
    }
    const wanted = wantedUnit(path);
    if (wanted && added.includes(path)) act(wanted, 'start', `${path} added`);
    if (wanted) daemonReload = true;
  }
  // Files a unit reads (a file added to or removed from a directory it reads counts): reload it if it can, else
  // restart it. A unit whose own file is new has nothing to catch up with.
  const changedSet = new Set(changed);
  const addedSet = new Set(added);
  const how = (path: string) => (changedSet.has(path) ? 'changed' : addedSet.has(path) ? 'added' : 'removed');
  for (const [unit, text] of unitTexts) {
    if (newUnits.has(unit)) continue;
    const references = unitReferences(text);
    for (const path of [...touched, ...removed]) {
      const referenced = references.paths.find((ref) => path === ref || path.startsWith(`${ref}/`));
      if (!referenced || unitOf(path)) continue;
      act(instances(unit), references.reloads ? 'reload-or-restart' : 'restart', `${path} ${how(path)}${referenced === path ? '' : ` (in ${referenced})`}, which ${unit} reads`);
    }
  }
  for (const trigger of triggers) {
    for (const path of [...touched, ...removed]) {
      if (globMatches(trigger.glob, path)) act(trigger.unit, trigger.action, `${path} ${how(path)} (${trigger.file}:${trigger.line})`);
    }
  }
  return {
    added,
    changed,
    removed,
    daemonReload,
    units: [...units.values()].sort((a, b) => (a.unit < b.unit ? -1 : 1)),
    packages: next.packages,
  };
}

/** A template unit acts on its running instances. */
function instances(unit: string): string {
  return unit.replace(/@\./, '@*.');
}

/** Shell-style glob: `*` within a path segment, `**` across segments, `?` one character. */
export function globMatches(glob: string, path: string): boolean {
  const pattern = glob
    .split('**')
    .map((part) => part.split('*').map((piece) => piece.split('?').map(escape).join('[^/]')).join('[^/]*'))
    .join('.*');
  return new RegExp(`^${pattern}$`).test(path);
}

function escape(text: string): string {
  return text.replace(/[.+^${}()|[\]\\]/g, '\\$&');
}

