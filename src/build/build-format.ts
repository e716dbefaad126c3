/** Bumped whenever the build's output for the same input changes: every machine is then built again. */
export const buildFormat = 'homecloud-build-9';
