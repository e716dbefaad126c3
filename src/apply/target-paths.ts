import { bashFile, type BashValue } from '../util/bash-file.ts';

/** Where homecloud keeps its own state on a target. */
export const stateDir = '/var/lib/homecloud';
export const generationsDir = `${stateDir}/generations`;
export const originalsDir = `${stateDir}/originals`;
/**
 * Directories homecloud created (NUL-separated, sorted): only these are
 * removed when empty, and only their mode and owner are homecloud's. Kept
 * twice, in the state directory and beside what homecloud places, so that a
 * state directory deleted by hand forgets none of them.
 */
export const createdDirsFiles = [`${stateDir}/created-dirs`, '/usr/local/lib/homecloud/created-dirs'];
/** Paths an apply that has not committed placed or meant to place (NUL-separated): the next deploy looks at them too. */
export const pendingFile = `${generationsDir}/pending`;
/**
 * Held from a deploy's probe to its commit (by the detached apply once it
 * runs): one deploy, rollback or clobber at a time. Outside the state
 * directory, which clobber removes, and in a directory only root may write
 * (not /run/lock, where any user could take the lock first).
 */
export const lockDir = '/run/homecloud';
export const machineLock = `${lockDir}/lock`;
/** Who holds the lock: when, from which host, by whom (shown to whoever waits). */
export const lockHolder = `${lockDir}/holder`;
/**
 * dpkg's list of installed packages as the last probe under the lock read it,
 * kept until dpkg's database moves (probe.bash): in /run, so a reboot forgets it.
 */
export const packagesCache = `${lockDir}/packages`;
/** Scratch for the probe under the lock: the managed paths' stat records as it found them. */
export const probeRecords = `${lockDir}/records`;

/**
 * Executables a layer ships to test the new tree before the apply changes
 * anything (HOMECLOUD_STAGED names the staged tree): a check that fails
 * refuses the deploy with its output, and the machine keeps its files.
 */
export const checksDir = '/usr/local/opt/initd/checks';

/** The paths above as target scripts name them (each script puts them under $R, root.bash). */
const bashPaths = {
  state_dir: stateDir,
  generations_dir: generationsDir,
  originals_dir: originalsDir,
  pending_file: pendingFile,
  created_dirs_files: createdDirsFiles,
  lock_dir: lockDir,
  machine_lock: machineLock,
  lock_holder: lockHolder,
  packages_cache: packagesCache,
  probe_records: probeRecords,
  checks_dir: checksDir,
};

/** Data for a target script: the paths it names (only those: shellcheck flags a variable no one reads). */
export function pathData(...names: (keyof typeof bashPaths)[]): Record<string, BashValue> {
  return Object.fromEntries(names.map((name) => [name, bashPaths[name]]));
}

/** Bash: R, the root every path a target script touches is under (empty on machines), and its helpers. Every target script starts with it. */
export const rootFunctions = bashFile(new URL('./root.bash', import.meta.url));

/** Bash: the directories homecloud made (load_created, save_created, remove_created) and restore_originals, shared by apply and clobber. */
export const restoreFunctions = bashFile(new URL('./restore.bash', import.meta.url));
