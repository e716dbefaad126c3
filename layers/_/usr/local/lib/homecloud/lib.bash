# shellcheck shell=bash
# homecloud base layer: what the layers' bash scripts share. Sourced, not run:
#   source /usr/local/lib/homecloud/lib.bash
# It only defines functions; the script sets its own shell options.

# A message on stderr, after the script's name: a unit's helpers (alert, run
# by failed-units) log under the unit's name in the journal.
log() {
  printf '%s: %s\n' "${0##*/}" "$*" >&2
}

die() {
  log "$@"
  exit 1
}

# read_settings ARRAY FILE: FILE's KEY=VALUE lines into the associative array
# named ARRAY, a later line winning. Values are data, never run or expanded:
# the rest of the line as written ($(...), quotes, spaces and "=" included,
# a CR before the newline dropped). Other lines (comments, blank lines, keys
# not like [A-Z_][A-Z0-9_]*) are skipped. A FILE it cannot read ends the script.
read_settings() {
  local -n _settings_into=$1
  local _settings_line
  # An indexed array would evaluate each key as arithmetic, running what a
  # variable of that name holds.
  [[ $(declare -p -- "$1" 2>/dev/null) == 'declare -A'* ]] || die "read_settings: $1 is not an associative array (declare -A $1)"
  [[ -r $2 ]] || die "cannot read the settings in $2"
  while IFS= read -r _settings_line || [[ -n $_settings_line ]]; do
    _settings_line=${_settings_line%$'\r'}
    if [[ $_settings_line =~ ^[[:space:]]*([A-Z_][A-Z0-9_]*)=(.*)$ ]]; then
      _settings_into["${BASH_REMATCH[1]}"]=${BASH_REMATCH[2]}
    fi
  done < "$2"
}

# valid_name NAME FILE: whether NAME may become part of a unit or file name
# (letters, digits, - and _, not starting with -); if not, says so, naming
# FILE, where it came from.
valid_name() {
  # Ranges are ASCII only in the C locale.
  local LC_ALL=C
  [[ $1 =~ ^[A-Za-z0-9_][A-Za-z0-9_-]*$ ]] && return 0
  log "$2: \"$1\" is not a valid name (letters, digits, - and _, not starting with -)"
  return 1
}

# make_ssh_key FILE COMMENT: an ed25519 key at FILE (and FILE.pub), made once
# and atomically: a key half made by an interrupted run is made again.
make_ssh_key() {
  [[ -s $1 && -s $1.pub ]] && return 0
  rm -f -- "$1.new" "$1.new.pub"
  ssh-keygen -q -t ed25519 -N '' -C "$2" -f "$1.new"
  mv -- "$1.new.pub" "$1.pub"
  mv -- "$1.new" "$1"
  log "made the key $1"
}

# publish NAME: standard input as this machine's public material NAME, which
# homecloud reads when it probes the machine and hands to the fleet's builds.
publish() {
  local public=/var/lib/homecloud/public
  mkdir -p -- "$public"
  # A name of this process's own: two units may publish the same material at once.
  cat > "$public/.$1.$$"
  chmod 0644 -- "$public/.$1.$$"
  mv -- "$public/.$1.$$" "$public/$1"
}

# publish_ssh_key NAME FILE: the body of the ssh-ed25519 public key in FILE
# (without its type and comment) as public material NAME.
publish_ssh_key() {
  local type body _
  read -r type body _ < "$2"
  [[ $type == ssh-ed25519 && $body =~ ^[A-Za-z0-9+/=]+$ ]] || die "$2 is not an ssh-ed25519 key"
  printf '%s\n' "$body" | publish "$1"
}
