/** Where homecloud keeps its own state on a target. */
export const stateDir = '/var/lib/homecloud';
export const generationsDir = `${stateDir}/generations`;
export const originalsDir = `${stateDir}/originals`;
/** Directories homecloud created (NUL-separated, sorted): only these are removed when empty, and only their mode and owner are homecloud's. */
export const createdDirsFile = `${stateDir}/created-dirs`;
/** Paths an apply that has not committed placed or meant to place (NUL-separated): the next deploy looks at them too. */
export const pendingFile = `${generationsDir}/pending`;
/**
 * Held from a deploy's probe to its commit (by the detached apply once it
 * runs): one deploy, rollback or clobber at a time. Outside the state
 * directory, which clobber removes.
 */
export const machineLock = '/run/lock/homecloud.lock';
/** Who holds the lock: when, from which host, by whom (shown to whoever waits). */
export const lockHolder = '/run/lock/homecloud.holder';
