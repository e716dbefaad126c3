import type { Manifest, ManifestEntries } from '../build/manifest.ts';
import { sameEntry } from '../build/manifest.ts';
import type { TriggerDeclaration } from '../build/declared.ts';
import { globMatches } from '../util/glob.ts';
import { instancesOf, dropInIndex, dropInOf, dropInsOf, templateOf, unitFileOf, unitOf, unitReferences, wantedUnit, type DropInIndex } from './units.ts';

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
  /** The declaration a generator made a path from (generate.ts), named in the reasons. */
  declaredIn: (path: string) => string | undefined = () => undefined,
): Plan {
  const before: ManifestEntries = previous?.entries ?? {};
  const after = next.entries;
  const added = Object.keys(after)
    .filter((path) => !before[path] && after[path]!.type !== 'dir')
    .sort();
  const changed = Object.keys(after)
    .filter((path) => before[path] && !sameEntry(before[path], after[path]) && !(before[path]!.type === 'dir' && after[path]!.type === 'dir'))
    .sort();
  const removed = Object.keys(before)
    .filter((path) => !after[path] && before[path]!.type !== 'dir')
    .sort();
  const touched = [...added, ...changed];

  const units = new Map<string, PlannedUnit>();
  const perConnection = perConnectionTemplates(after, read);
  const act = (unit: string, action: UnitAction, reason: string) => {
    // A service an Accept=yes socket starts per connection serves one connection from the files as they were: the
    // next connection gets the new ones (a restart would cut one off).
    if (action !== 'stop' && action !== 'start' && perConnection.has(unit.replace(/@\*\./, '@.'))) return;
    // A slice restarted would stop everything in it; daemon-reload sets its changed limits on the running slice.
    if (action !== 'stop' && action !== 'start' && unit.endsWith('.slice')) return;
    const known = units.get(unit);
    if (!known) units.set(unit, { unit, action, reasons: [reason] });
    else {
      if (actionStrength[action] > actionStrength[known.action]) known.action = action;
      if (!known.reasons.includes(reason)) known.reasons.push(reason);
    }
  };

  let daemonReload = false;
  const changedSet = new Set(changed);
  const addedSet = new Set(added);
  const how = (path: string) => (changedSet.has(path) ? 'changed' : addedSet.has(path) ? 'added' : 'removed');
  /** A reason about a path, with the declaration a generator made it from. */
  const because = (path: string, words: string) => {
    const declaration = declaredIn(path);
    return declaration ? `${words} (declared in ${declaration})` : words;
  };
  const stopped = new Set<string>();
  for (const path of removed) {
    const owner = unitOf(path);
    if (owner && !owner.dropIn) act(owner.unit, 'stop', because(path, `${path} ${how(path)}`));
    if (owner && !owner.dropIn) stopped.add(owner.unit);
    if (owner || dropInOf(path)) daemonReload = true;
    const wanted = wantedUnit(path);
    if (wanted) act(wanted, 'stop', because(path, `${path} ${how(path)}`));
    if (wanted) stopped.add(wanted);
  }
  // Units whose own file is new (an instance: its template's): nothing of theirs is running yet.
  const newUnits = new Set(
    added
      .map((path) => unitOf(path))
      .filter((owner) => owner && !owner.dropIn)
      .map((owner) => owner!.unit),
  );
  const isNew = (unit: string) => newUnits.has(unit) || newUnits.has(templateOf(unit) ?? unit);
  const isStopped = (unit: string) => stopped.has(unit) || stopped.has(templateOf(unit) ?? unit);
  for (const path of touched) {
    const owner = unitOf(path);
    if (owner && !owner.dropIn) {
      daemonReload = true;
      // A new unit file starts nothing by itself; a changed one restarts the unit (its running instances, for a template).
      if (changedSet.has(path)) act(instancesOf(owner.unit), 'restart', because(path, `${path} ${how(path)}`));
    }
    const wanted = wantedUnit(path);
    if (wanted && addedSet.has(path)) act(wanted, 'start', because(path, `${path} ${how(path)}`));
    if (wanted) daemonReload = true;
  }

  // A drop-in of any form (the unit's own, its template's, a dash prefix's, the type's) added, changed or removed
  // restarts every unit the trees name that it applies to, before or after, as systemd merges drop-ins (a
  // same-named one further down shadows it). Units the trees do not name are left alone, even when it applies to
  // them (FORMAT.md section 7): they see it at their next restart.
  const beforeDropIns = dropInIndex(Object.keys(before));
  const afterDropIns = dropInIndex(Object.keys(after));
  const namedAfter = new Set(unitsNamed(after));
  const named = [...new Set([...unitsNamed(before), ...namedAfter])].sort();
  const applying = new Map<string, Set<string>>();
  const applies = (unit: string, index: DropInIndex, tree: string) => {
    const key = `${tree} ${unit}`;
    let paths = applying.get(key);
    if (!paths) applying.set(key, (paths = new Set(dropInsOf(unit, index).map((dropIn) => dropIn.path))));
    return paths;
  };
  for (const path of [...touched, ...removed]) {
    if (!dropInOf(path)) continue;
    daemonReload = true;
    const appliedTo = (unit: string) =>
      (before[path] !== undefined && applies(unit, beforeDropIns, 'before').has(path)) ||
      (after[path] !== undefined && applies(unit, afterDropIns, 'after').has(path));
    const affected = named.filter((unit) => !isNew(unit) && !isStopped(unit) && appliedTo(unit));
    // An instance whose template is affected is restarted with the template's instances (x@*.service).
    for (const unit of affected) if (!affected.includes(templateOf(unit) ?? '')) act(instancesOf(unit), 'restart', because(path, `${path} ${how(path)}`));
  }

  // Files a unit reads (a file added to or removed from a directory it reads counts), in its unit file or any drop-in
  // that applies to it: reload it if it can, else restart it. A unit whose own file is new has nothing to catch up
  // with. An instance whose template the tree names reads by name only what is its own (x@a.service.d/).
  const configuration = (unit: string) => {
    const file = unitFileOf(unit, (path) => after[path] !== undefined);
    return [...(file ? [file] : []), ...applies(unit, afterDropIns, 'after')].filter((path) => after[path]!.type === 'file');
  };
  const texts = new Map<string, string>();
  const text = (paths: string[]) => paths.map((path) => texts.get(path) ?? texts.set(path, read(path)).get(path)!).join('\n');
  for (const unit of [...namedAfter].sort()) {
    if (isNew(unit)) continue;
    const paths = configuration(unit);
    const template = templateOf(unit);
    const shared = template && namedAfter.has(template) ? new Set(configuration(template)) : new Set<string>();
    const own = paths.filter((path) => !shared.has(path));
    // An instance reads, and reloads, as its template says (its own unit file is often a link to it); and what the
    // template names with the instance's name (/usr/local/etc/x/%i.conf) is the instance's own.
    const whole = text([...new Set([...paths, ...(template ? configuration(template) : [])])]);
    const instance = template ? /^[^@]+@([^@]+)\.[^.@]+$/.exec(unit)![1]! : undefined;
    const read = unitReferences(whole);
    const plain = new Set(read.paths);
    const named = instance ? unitReferences(whole.replace(/%[iI]/g, instance)).paths.filter((path) => !plain.has(path)) : [];
    if (!own.length && !named.length) continue;
    const reloads = read.reloads;
    const references = { paths: [...unitReferences(text(own)).paths, ...named] };
    for (const path of [...touched, ...removed]) {
      const referenced = references.paths.find((ref) => path === ref || path.startsWith(`${ref}/`));
      if (!referenced || unitOf(path) || dropInOf(path)) continue;
      const where = referenced === path ? '' : ` (in ${referenced})`;
      act(instancesOf(unit), reloads ? 'reload-or-restart' : 'restart', because(path, `${path} ${how(path)}${where}, which ${unit} reads`));
    }
  }
  for (const trigger of triggers) {
    for (const path of [...touched, ...removed]) {
      if (globMatches(trigger.glob, path)) act(trigger.unit, trigger.action, because(path, `${path} ${how(path)} (${trigger.file}:${trigger.line})`));
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

/** Service templates whose instances an `Accept=yes` socket of the tree starts, one per connection (`x.socket`, `x@.socket` -> `x@.service`). */
function perConnectionTemplates(entries: ManifestEntries, read: (path: string) => string): Set<string> {
  const templates = new Set<string>();
  for (const path of Object.keys(entries)) {
    const owner = unitOf(path);
    if (!owner || owner.dropIn || !owner.unit.endsWith('.socket') || entries[path]!.type !== 'file') continue;
    if (!/^\s*Accept\s*=\s*(yes|true|on|1)\s*$/im.test(read(path))) continue;
    templates.add(`${owner.unit.replace(/@?\.socket$/, '')}@.service`);
  }
  return templates;
}

/** The units a tree names: by a unit file, a drop-in of their own or a wants link (a template stands for its instances). */
function unitsNamed(entries: ManifestEntries): string[] {
  const units = new Set<string>();
  for (const path of Object.keys(entries)) {
    const unit = unitOf(path)?.unit ?? wantedUnit(path);
    if (unit) units.add(unit);
  }
  return [...units];
}
