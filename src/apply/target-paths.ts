/** Where homecloud keeps its own state on a target. */
export const generationsDir = '/var/lib/homecloud/generations';
export const originalsDir = '/var/lib/homecloud/originals';
/** Directories homecloud created (one per line): only these are removed when empty. */
export const createdDirsFile = '/var/lib/homecloud/created-dirs';
/** Held while an apply runs: one apply at a time, and the next deploy's probe waits for it. */
export const applyLock = '/var/lib/homecloud/apply.lock';
