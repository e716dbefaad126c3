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

/** Bash: `created` holds the directories homecloud made; load_created reads both copies, save_created writes both. */
export const createdDirsFunctions = `created_files=(${createdDirsFiles.join(' ')})
declare -A created=()
load_created() {
  local file dir
  for file in "\${created_files[@]}"; do
    if [ -f "$file" ]; then while IFS= read -r -d '' dir; do created[$dir]=1; done < "$file"; fi
  done
}
save_created() {
  local file
  for file in "\${created_files[@]}"; do
    mkdir -p "\${file%/*}"
    if ((\${#created[@]})); then printf '%s\\0' "\${!created[@]}" | sort -z > "$file.new"; else : > "$file.new"; fi
    mv -f "$file.new" "$file"
  done
}`;
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
