# restore.bash: what apply and clobber share to undo homecloud's work: the
# directories homecloud made, and the originals it kept of what it took over.
# Paths are as on the machine; each is touched under $R (root.bash).
#
# Data in front: originals_dir, created_dirs_files (both copies of the list
# of directories homecloud made, target-paths.ts).
# shellcheck shell=bash disable=SC2154

# created: the directories homecloud made. Only these are removed when empty,
# and only their mode and owner are homecloud's to set.
created_files=("${created_dirs_files[@]/#/"$R"}")
declare -A created=()

# load_created: read both copies (a state directory deleted by hand forgets none).
load_created() {
  local file dir
  for file in "${created_files[@]}"; do
    if [ -f "$file" ]; then while IFS= read -r -d '' dir; do created[$dir]=1; done < "$file"; fi
  done
}

# save_created: write both copies.
save_created() {
  local file
  for file in "${created_files[@]}"; do
    mkdir -p "${file%/*}"
    if ((${#created[@]})); then printf '%s\0' "${!created[@]}" | sort -z > "$file.new"; else : > "$file.new"; fi
    mv -f "$file.new" "$file"
  done
}

# add_created DIR...: homecloud made these directories.
add_created() {
  local dir
  for dir in "$@"; do created[$dir]=1; done
}

# remove_created DIR...: remove those of the directories homecloud made
# (given deepest first), each when empty; gone lists them, and those now gone
# are forgotten.
remove_created() {
  local dir
  gone=()
  for dir in "$@"; do if [[ -n ${created[$dir]:-} ]]; then gone+=("$dir"); fi; done
  if ((${#gone[@]})); then printf '%s\0' "${gone[@]}" | rooted xargs -0 rmdir --ignore-fail-on-non-empty --; fi
  for dir in "${gone[@]}"; do [ -d "$R$dir" ] || unset 'created[$dir]'; done
}

# restore_originals: for the NUL-separated paths on standard input that
# homecloud no longer places, put back what was there before it took them
# over. Only paths with a kept original are looked at (few, whatever the list).
restore_originals() {
  local originals=$R$originals_dir path
  [ -d "$originals" ] || { cat > /dev/null; return 0; }
  sort -z | comm -z -12 - <(cd "$originals" && find . -mindepth 1 -printf '/%P\0' | sort -z) | while IFS= read -r -d '' path; do
    if { [ -e "$originals$path" ] || [ -L "$originals$path" ]; } && ! [ -e "$R$path" ] && ! [ -L "$R$path" ]; then
      mkdir -p -- "$R${path%/*}"
      mv -T -- "$originals$path" "$R$path"
    fi
  done
}
