# shellcheck shell=bash
# containers layer: what its scripts share. Sourced after /usr/local/lib/homecloud/lib.bash.

# is_subvolume DIR: whether DIR is the top of a btrfs subvolume (inode 256 on btrfs).
is_subvolume() {
  [[ $(stat -f -c %T "$1") == btrfs && $(stat -c %i "$1") == 256 ]]
}

# delete_tree DIR: a container's root, the subvolumes nested in it first (a booted clone's own
# /var/lib/machines and /var/lib/portables are subvolumes, which would keep its delete from working).
delete_tree() {
  local child
  if is_subvolume "$1"; then
    while IFS= read -r -d '' child; do delete_tree "$child"; done < <(find "$1" -mindepth 1 -xdev -type d -inum 256 -print0)
    btrfs -q subvolume delete "$1"
  else
    rm -rf --one-file-system -- "$1"
  fi
}
