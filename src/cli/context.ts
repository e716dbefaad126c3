import { HomecloudError } from '../load/errors.ts';
import type { Model } from '../load/model.ts';
import { findRepoRoot, RepoPaths } from '../load/repo.ts';
import { SandboxPaths } from '../sandbox/paths.ts';
import type { GlobalOptions } from './options.ts';

export function repoFrom(options: GlobalOptions): RepoPaths {
  const repo = new RepoPaths(findRepoRoot(options.repo ?? process.cwd()));
  if (options.sandbox) repo.sandboxInventory = new SandboxPaths().inventory;
  return repo;
}

/** How many machines are worked on at once: --jobs, else the repository's `jobs` setting. */
export function jobsFor(options: GlobalOptions, model: Model): number {
  if (options.jobs === undefined) return model.settings.jobs;
  const jobs = Number(options.jobs);
  if (!Number.isInteger(jobs) || jobs < 1) throw new HomecloudError(`--jobs takes a whole number of at least 1, not "${options.jobs}"`);
  return jobs;
}

/** How long to wait for another deploy that holds a machine: --wait, else five minutes. */
export function waitSeconds(options: { wait?: string }): number {
  if (options.wait === undefined) return 300;
  const seconds = Number(options.wait);
  if (!Number.isInteger(seconds) || seconds < 0) throw new HomecloudError(`--wait takes a whole number of seconds, not "${options.wait}"`);
  return seconds;
}
