# clobber.bash: Control-Alt-Delete. Stop homecloud's units, remove what it
# placed (originals come back), only the directories it made, and its state;
# reload systemd. Prints "clobbered" at its end.
#
# Data in front (clobberScript, clobber.ts):
#   units   units to stop (a template as x@*.service)
#   files   paths homecloud placed that are not directories
#   dirs    directories it placed, deepest first
#   state_dir, originals_dir, created_dirs_files
# Functions from root.bash and restore.bash come before.
# shellcheck shell=bash disable=SC2154

set -uo pipefail
export LC_ALL=C
if ((${#units[@]})); then systemctl stop "${units[@]}" 2>/dev/null || true; fi
if ((${#files[@]})); then
  printf '%s\0' "${files[@]}" | rooted xargs -0 rm -f --
  printf '%s\0' "${files[@]}" | restore_originals
fi
# Only directories homecloud made.
load_created
remove_created "${dirs[@]}"
if ((${#dirs[@]})); then printf '%s\0' "${dirs[@]}" | restore_originals; fi
systemctl daemon-reload
systemctl reset-failed 2>/dev/null || true
rm -rf "$R$state_dir" "${created_files[1]%/*}"
echo clobbered
