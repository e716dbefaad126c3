/** Repository settings from homecloud.json (FORMAT.md section 9). */
export interface Settings {
  /** Use homecloud's standard layers for names the repository lacks. */
  stdlib: boolean;
  /** How many machines are worked on at once. */
  jobs: number;
  /** How many generations each target keeps for rollback. */
  generations: number;
  /** Absolute directories outside the repository that "!" links and linked templates may read from (normalized). */
  readOutside: string[];
}

export const defaultSettings: Settings = { stdlib: true, jobs: 16, generations: 5, readOutside: [] };
