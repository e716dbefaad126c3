# shellcheck shell=bash
# homecloud postgres layer: what its scripts on the machine share. Sourced after lib.bash.

# new_data_directory PATH: an empty data directory, postgres's alone; a btrfs subvolume where the file system is
# btrfs, so that a snapshot holds a cluster's data and WAL together.
new_data_directory() {
  if [[ $(stat -f -c %T "${1%/*}") == btrfs ]]; then btrfs -q subvolume create "$1"; else mkdir "$1"; fi
  chown postgres:postgres "$1"
  chmod 0700 "$1"
}
