# apply.bash: apply the transferred staging generation to the machine and
# reconcile: check, packages, stop removed units, prune (what goes goes
# first, so nothing is ever written or removed through a link that is being
# replaced), files, daemon-reload, hook, restarts and reloads, starts,
# health, commit. It runs while the deploy holds the machine's lock (fd 9),
# and commits the generation only when every unit it acted on is healthy.
# It does what the plan says: whether the hook runs, and which units restart
# outright because they had failed, are decided on the operator's side.
#
# Data in front (applyScript, script.ts):
#   pkg_install, pkg_purge   packages to install that the machine lacks, to purge that it has
#   stop, restart, reload, start
#                            units by action; restart and reload act on running units only
#   restart_failed           units restarted outright: they had failed
#   acted                    units acted on (all but those stopped): checked for health
#   managed                  the new generation's units (a template as x@*.service)
#   daemon_reload, run_hook  1 or 0
#   keep                     how many generations to keep
#   meta                     KEY=VALUE lines for the generation's meta file
#   generations_dir, originals_dir, pending_file, checks_dir, initd_dir, ...
# and the printers of what the CLI reads (phase, refused, refused_by_check,
# unhealthy, still_failed, generation: applyEvents in script.ts). Functions
# from root.bash, inspect.bash, restore.bash and publish.bash come before.
# Lists of paths are read from the staging generation's lists/ (listFiles).
# shellcheck shell=bash disable=SC2154

set -euo pipefail
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
umask 022
G=$R$generations_dir
S=$G/staging
L=$S/lists
O=$R$originals_dir
P=$R$pending_file
exists() { [ -e "$1" ] || [ -L "$1" ]; }
# unrooted COMMAND...: run COMMAND with the NUL-separated paths under $R on standard input as the machine names them.
unrooted() { if [[ -n $R ]]; then sed -z "s|^$R||" | "$@"; else "$@"; fi; }
mapfile -d '' remove_dirs < "$L/remove-dirs"
mapfile -d '' must_empty < "$L/must-empty"
mapfile -d '' make_dirs < "$L/make-dirs"
load_created

phase check
# A directory that a file or link replaces: if homecloud made it, it must hold only what homecloud manages; if not, it is kept as an original.
for dir in "${must_empty[@]}"; do
  { [ -d "$R$dir" ] && ! [ -L "$R$dir" ]; } || continue
  if [[ -n ${created[$dir]:-} ]]; then
    extra=$( { find "$R$dir" -mindepth 1 -print0 | unrooted sort -z | comm -z -23 - <(sort -z "$L/managed-under") | head -z -n 1 | tr '\0' '\n'; } || true)
    if [[ -n $extra ]]; then refused "$dir holds $extra, which homecloud does not manage"; exit 4; fi
  elif exists "$O$dir"; then
    refused "$dir is to be replaced, but an earlier original of it is kept in $originals_dir$dir"; exit 4
  fi
done

# A layer's checks see the new tree before anything changes (a config test against it): one that fails refuses the deploy.
for check in "$S/tree$checks_dir"/*; do
  { [ -f "$check" ] && [ -x "$check" ]; } || continue
  if ! output=$(HOMECLOUD_STAGED="$S/tree" "$check" 2>&1 9>&-); then
    refused_by_check "${check#"$S/tree"}: $(printf '%s\n' "$output" | tail -n 5 | tr '\n' ' ')"
    exit 4
  fi
done

# From here on the machine changes: until the commit, the next deploy looks at these paths too.
mkdir -p "$G" "$O"
cat "$L/paths" >> "$P"

phase packages
if ((${#pkg_purge[@]})); then apt-get -o DPkg::Lock::Timeout=300 purge -y -q "${pkg_purge[@]}" >/dev/null 9>&-; fi
if ((${#pkg_install[@]})); then apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${pkg_install[@]}" >/dev/null 9>&-; fi

phase stop
for unit in "${stop[@]}"; do systemctl stop "$unit" 2>/dev/null || true; done

phase prune
# What homecloud takes over is kept as an original, unless it already is what homecloud places there (its own, say, after its state was lost).
declare -A want=()
while IFS= read -r -d '' path && IFS= read -r -d '' what; do
  exists "$R$path" && ! exists "$O$path" && want[$path]=$what
done < "$L/take-over"
if ((${#want[@]})); then
  declare -A sum=()
  for path in "${!want[@]}"; do if [[ ${want[$path]} == f:* && -f $R$path && ! -L $R$path ]]; then printf '%s\0' "$path"; fi; done | rooted xargs -0 -r sha256sum -z > "$S/take-over.sums"
  # A line: 64 hex digits, two spaces, the path under $R.
  while IFS= read -r -d '' line; do sum[${line:66+${#R}}]=${line:0:64}; done < "$S/take-over.sums"
  for path in "${!want[@]}"; do
    what=${want[$path]}
    case $what in
      f:*) [[ ${sum[$path]:-} == "${what:2}" ]] && continue ;;
      l:*) [[ -L $R$path && $(readlink -- "$R$path") == "${what:2}" ]] && continue ;;
      d) [[ -d $R$path ]] && continue ;;
    esac
    mkdir -p -- "$(dirname -- "$O$path")"
    # In the way of another type: moved aside; else copied (what is there stays until the new file lands).
    if [[ $what == d || ( -d $R$path && ! -L $R$path ) ]]; then mv -T -- "$R$path" "$O$path"; else cp -a -- "$R$path" "$O$path"; fi
  done
fi
rooted xargs -0 -r rm -f -- < "$L/replace"
rooted xargs -0 -r rm -f -- < "$L/remove"
if [ -s "$L/remove" ]; then restore_originals < "$L/remove"; fi
remove_created "${remove_dirs[@]}"
for dir in "${must_empty[@]}"; do
  if [ -d "$R$dir" ] && ! [ -L "$R$dir" ]; then mkdir -p -- "$(dirname -- "$O$dir")"; mv -T -- "$R$dir" "$O$dir"; fi
done
if [ -s "$L/gone-dirs" ]; then restore_originals < "$L/gone-dirs"; fi

phase files
new_dirs=()
for dir in "${make_dirs[@]}"; do [ -d "$R$dir" ] || new_dirs+=("$dir"); done
if ((${#new_dirs[@]})); then
  printf '%s\0' "${new_dirs[@]}" | rooted xargs -0 mkdir -p --
  add_created "${new_dirs[@]}"
fi
if ((${#new_dirs[@]} + ${#gone[@]})) || ! [ -f "${created_files[0]}" ] || ! [ -f "${created_files[1]}" ]; then save_created; fi
while IFS= read -r -d '' mode && IFS= read -r -d '' dir; do
  { [ -d "$R$dir" ] && ! [ -L "$R$dir" ]; } || continue
  if [[ -n ${created[$dir]:-} ]]; then chmod "0$mode" -- "$R$dir"; chown root:root -- "$R$dir"
  elif (( 8#$mode & 8#1000 )); then chmod +t -- "$R$dir"
  else chmod -t -- "$R$dir"; fi
done < "$L/fix-dirs"
# -I: the list is exactly what differs, so copy it all (rsync's quick check would take same size and second for unchanged).
if [ -s "$L/place" ]; then rsync -aKI --chown=0:0 --no-implied-dirs --from0 --files-from="$L/place" "$S/tree/" "$R/"; fi

phase daemon-reload
if ((daemon_reload)); then systemctl daemon-reload; fi
# A unit that went while failed would stay listed as failed.
for unit in "${stop[@]}"; do systemctl reset-failed "$unit" 2>/dev/null || true; done

phase hook
# The plan says whether: the tree has the initd Makefile.
if ((run_hook)); then make -s -C "$R$initd_dir" 9>&-; fi

phase units
units_started=$(date +%s)
running_before=" $(systemctl list-units --state=active,activating,reloading --plain --no-legend 2>/dev/null | awk '{ printf "%s ", $1 }')"
was_running() { [[ " $running_before " == *" $1 "* ]]; }
# A deliberate restart is not a crash loop: clear the start rate limit (and the failed state) first. A unit to
# try-restart or try-reload is cleared only when it runs: one that failed since the plan stays failed and is
# reported unhealthy, never forgotten (the next deploy plans its restart, as it had failed).
for unit in "${restart_failed[@]}" "${start[@]}"; do [[ $unit == *'*'* ]] || systemctl reset-failed "$unit" 2>/dev/null || true; done
for unit in "${restart[@]}" "${reload[@]}"; do if [[ $unit != *'*'* ]] && was_running "$unit"; then systemctl reset-failed "$unit" 2>/dev/null || true; fi; done
# try-restart and try-reload leave a unit that was not running stopped, as meant (a unit a layer ships but this machine does not enable).
stays_stopped() { [[ " ${restart[*]} ${reload[*]} " == *" $1 "* ]] && ! was_running "$1"; }
# A unit whose restart or reload fails is unhealthy, even when it keeps running (a reload refused by a config test).
refused_units=()
for unit in "${restart[@]}"; do systemctl try-restart "$unit" || refused_units+=("$unit"); done
for unit in "${reload[@]}"; do systemctl try-reload-or-restart "$unit" || refused_units+=("$unit"); done
for unit in "${restart_failed[@]}"; do systemctl restart "$unit" || refused_units+=("$unit"); done
for unit in "${start[@]}"; do systemctl start --no-block "$unit" || refused_units+=("$unit"); done

phase health
failed=("${refused_units[@]}")
# A service that crashes at once is still "active" right after its start: give it a moment.
if ((${#acted[@]})); then sleep 0.3; fi
for unit in "${acted[@]}"; do
  [[ $unit == *'*'* ]] && continue
  [[ " ${refused_units[*]} " == *" $unit "* ]] && continue
  # Until it settles: a start may still be queued behind the units it comes after.
  for _ in $(seq 100); do
    state=$(systemctl show -p ActiveState --value "$unit")
    if [[ $state != activating && $state != deactivating && $state != reloading && -z $(systemctl show -p Job --value "$unit") ]]; then break; fi
    sleep 0.1
  done
  if [[ $state == failed ]] || { [[ $state != active ]] && ! stays_stopped "$unit" && [[ $(systemctl show -p Type --value "$unit") != oneshot ]] && [[ $unit != *.timer ]] && [[ $unit != *.target ]]; }; then
    failed+=("$unit")
  fi
done
# report PRINTER UNIT: the event line, then the unit's status and journal, indented.
report() {
  "$1" "$2"
  systemctl status --no-pager --lines=0 "$2" 2>&1 | sed 's/^/  /' || true
  # What the unit logged since its action (a config test's message, a crash); else its last lines.
  lines=$(journalctl --no-pager -q -n 30 -u "$2" --since "@$units_started" 2>&1 || true)
  [[ -n $lines ]] || lines=$(journalctl --no-pager -q -n 15 -u "$2" 2>&1 || true)
  printf '%s\n' "$lines" | sed 's/^/  /'
}
if ((${#failed[@]})); then
  for unit in "${failed[@]}"; do report unhealthy "$unit"; done
  exit 3
fi

phase commit
stat_records < "$L/paths" > "$S/state"
manifest_sum=$(sha256sum < "$S/manifest.json") && printf '%s\n' "${manifest_sum%% *}" > "$S/manifest.json.sha256"
last=$(cat "$G/last" 2>/dev/null || echo 0)
n=$((last + 1))
if ((${#meta[@]})); then printf '%s\n' "${meta[@]}" >> "$S/meta"; fi
mv -T "$S" "$G/$n"
rm -f "$P"
echo "$n" > "$G/last"
ln -sfn "$n" "$G/current.new" && mv -T "$G/current.new" "$G/current"
# Generations beyond the number kept go, removed in the background (a tree of many files takes a while to unlink).
find "$G" -mindepth 1 -maxdepth 1 -regex '.*/[0-9]+' -printf '%f\n' | sort -n | head -n "-$keep" | while read -r old; do mv -T -- "$G/$old" "$G/.old-$old"; done
if compgen -G "$G/.old-*" > /dev/null; then (setsid rm -rf -- "$G"/.old-* < /dev/null > /dev/null 2>&1 9>&- &); fi
generation "$n"
# What layers' units published here (a new certificate, say): other machines' trees may need it.
publish
# Units of this generation that are failed though this deploy did not act on them: said, never forgotten.
for unit in $(systemctl list-units --state=failed --plain --no-legend --full 2>/dev/null | awk '{ print $1 }'); do
  for pattern in "${managed[@]}"; do
    # shellcheck disable=SC2053 # the pattern is a glob (x@*.service)
    if [[ $unit == $pattern ]]; then report still_failed "$unit"; break; fi
  done
done
