import type { MachineLayout } from '../build/layout.ts';
import type { RepoPaths } from '../load/repo.ts';
import type { Problem } from './results.ts';

/**
 * A path of a machine's built tree as the user finds it: the source file, whose lines a message's are, with the
 * path on the machine; for a rendered template or a generator's file, the path on the machine (its lines are the
 * output's) with where it came from. A path the tree does not have is the machine's own.
 */
export function whereInTree(repo: RepoPaths, layout: MachineLayout, path: string): Pick<Problem, 'file' | 'note'> {
  if (!layout.manifest.entries[path]) return { file: path };
  const origin = layout.provenance.get(path)?.entry;
  if (!origin) return { file: path, note: 'made by a generator' };
  const source = repo.display(origin.path);
  return origin.rule === 'template' ? { file: path, note: `rendered from ${source}` } : { file: source, note: path };
}
