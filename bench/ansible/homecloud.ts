// The desired state as a homecloud repository: a layer per service, a common
// layer, the repository's own base layer, m4 templates, facts/<machine>.json.
import { join } from 'node:path';
import { m4SourceName, m4Template, type DesiredState, type Group } from './state.ts';
import { writeLink, writeText } from './write.ts';

export const allMachines = 'machine';

/** Where a group's files go: the base layer, each machine's own tree, or the layer of that name. */
function groupDirectories(root: string, state: DesiredState, group: Group): string[] {
  if (group === allMachines) return state.machines.map((machine) => join(root, 'machines', machine));
  return [join(root, 'layers', group)];
}

export function writeHomecloudRepository(root: string, state: DesiredState): void {
  // The repository carries its own base layer (the standard prelude), so it builds the same with any homecloud.
  writeText(join(root, 'homecloud.json'), '{ "stdlib": false }\n');
  writeText(join(root, 'inventory.json'), JSON.stringify(Object.fromEntries(state.machines.map((m) => [m, { host: m }])), null, 1) + '\n');
  for (const machine of state.machines) writeText(join(root, 'facts', `${machine}.json`), JSON.stringify(state.facts[machine], null, 1) + '\n');
  for (const file of state.files) {
    for (const dir of groupDirectories(root, state, file.group)) writeText(join(dir, file.path), file.content, file.mode);
  }
  for (const template of state.templates) {
    for (const dir of groupDirectories(root, state, template.group)) writeText(join(dir, m4SourceName(template.path)), m4Template(template), template.mode);
  }
  for (const link of state.links) {
    for (const dir of groupDirectories(root, state, link.group)) writeLink(join(dir, link.path), link.target);
  }
}

/** Where the homecloud repository keeps a deployed path's source (for the one-change run). */
export function homecloudSource(root: string, state: DesiredState, path: string): string {
  const file = state.files.find((f) => f.path === path);
  if (!file || file.group === allMachines) throw new Error(`${path} is not a layer's static file`);
  return join(root, 'layers', file.group, path);
}
