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
 * directory, which clobber removes, and in a directory only root may write
 * (not /run/lock, where any user could take the lock first).
 */
export const lockDir = '/run/homecloud';
export const machineLock = `${lockDir}/lock`;
/** Who holds the lock: when, from which host, by whom (shown to whoever waits). */
export const lockHolder = `${lockDir}/holder`;

/**
 * Bash: restore_originals puts back, for the NUL-separated paths on standard
 * input that homecloud no longer places, what was there before it took them
 * over. Only paths with a kept original are looked at (few, whatever the list).
 */
export const restoreFunction = `restore_originals() {
  [ -d ${originalsDir} ] || { cat > /dev/null; return 0; }
  local path
  sort -z | comm -z -12 - <(cd ${originalsDir} && find . -mindepth 1 -printf '/%P\\0' | sort -z) | while IFS= read -r -d '' path; do
    if { [ -e "${originalsDir}$path" ] || [ -L "${originalsDir}$path" ]; } && ! [ -e "$path" ] && ! [ -L "$path" ]; then
      mkdir -p -- "\${path%/*}"
      mv -T -- "${originalsDir}$path" "$path"
    fi
  done
}`;

/**
 * Executables a layer ships to test the new tree before the apply changes
 * anything (HOMECLOUD_STAGED names the staged tree): a check that fails
 * refuses the deploy with its output, and the machine keeps its files.
 */
export const checksDir = '/usr/local/opt/initd/checks';
