import { findRepoRoot, RepoPaths } from '../load/repo.ts';
import type { GlobalOptions } from './main.ts';

export function repoFrom(options: GlobalOptions): RepoPaths {
  return new RepoPaths(findRepoRoot(options.repo ?? process.cwd()));
}
