import { findRepoRoot, RepoPaths } from '../load/repo.ts';
import { SandboxPaths } from '../sandbox/paths.ts';
import type { GlobalOptions } from './main.ts';

export function repoFrom(options: GlobalOptions): RepoPaths {
  const repo = new RepoPaths(findRepoRoot(options.repo ?? process.cwd()));
  if (options.sandbox) repo.sandboxInventory = new SandboxPaths().inventory;
  return repo;
}
