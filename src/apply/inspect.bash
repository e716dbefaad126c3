# inspect.bash: functions that read managed paths on a target, used by the
# probe, the apply's commit and diff. NUL-separated throughout, so that any
# file name (spaces, backslashes, newlines) is read as it is and never
# interpreted. Paths are absolute (as on the machine; each is read under $R,
# root.bash), so find never takes one for an expression.
# shellcheck shell=bash

# stat_records: for NUL-separated paths on standard input, one record per
# existing path: mode (with its type, in hex), owner and group ids, size,
# mtime, ctime, inode, path. The apply records these at each commit; the
# next probe compares, and only paths whose record moved are looked at
# closely. Numeric ids: looking names up costs more than the rest.
stat_records() {
  rooted xargs -0 -r stat --printf "$stat_format" -- 2>/dev/null || true
}
stat_format='%f %u %g %s %.9Y %.9Z %i %n\0'

# records_unmoved PATHS STATE [SCRATCH]: whether the stat records of the
# NUL-separated paths in PATHS are those in STATE (as stat_records wrote
# them). With SCRATCH, a file it may write (the lock's), one stat is the only
# process: its records go there, since bash reads a pipe a byte at a time and
# a file in blocks, and are compared here record for record. Without, or for
# a list too long for one command line, stat's output goes to cmp.
# shellcheck disable=SC2317 # not every script calls it
records_unmoved() {
  local -a listed=() now=() recorded=()
  local i
  mapfile -d '' -t listed < "$1"
  if [ "${#listed[@]}" -gt 10000 ]; then
    stat_records < "$1" | cmp -s - "$2"
  elif [ -z "${3:-}" ]; then
    stat --printf "$stat_format" -- "${listed[@]/#/"$R"}" 2>/dev/null | cmp -s - "$2"
  else
    if [ "${#listed[@]}" -gt 0 ]; then
      # A scratch file that cannot be written is no answer: its older records could match.
      { stat --printf "$stat_format" -- "${listed[@]/#/"$R"}" 2>/dev/null || true; } > "$3" || return 1
      mapfile -d '' -t now < "$3"
    fi
    mapfile -d '' -t recorded < "$2"
    [ "${#now[@]}" -eq "${#recorded[@]}" ] || return 1
    for ((i = 0; i < ${#now[@]}; i++)); do
      [[ ${now[i]} == "${recorded[i]}" ]] || return 1
    done
  fi
}

# record_paths: the paths of stat records (their seven fields dropped), as on the machine.
record_paths() {
  sed -z "s|^\([^ ]* \)\{7\}$R||"
}

# inspect OUT: for NUL-separated paths on standard input, OUT.found gets six
# NUL-terminated fields per existing path (path, type, type through links,
# mode, owner:group, link target) and OUT.sums sha256sum -z lines for the
# regular files among them.
inspect() {
  local out=$1
  cat > "$out.paths"
  rooted xargs -0 -r bash -c 'exec find "$@" -maxdepth 0 -printf "%p\0%y\0%Y\0%m\0%u:%g\0%l\0"' find < "$out.paths" > "$out.found" 2>/dev/null || true
  rooted xargs -0 -r bash -c 'exec find "$@" -maxdepth 0 -type f -print0' find < "$out.paths" 2>/dev/null | xargs -0 -r sha256sum -z > "$out.sums" 2>/dev/null || true
  if [[ -n $R ]]; then
    sed -z -i "s|^$R/|/|" "$out.found"
    sed -z -i "s|^\([0-9a-f]\{64\}  \)$R/|\1/|" "$out.sums"
  fi
}
