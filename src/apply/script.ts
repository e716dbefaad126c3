import { publishFunction } from '../facts/probe.ts';
import { initdMakefile, type DeployPlan } from '../plan/deploy-plan.ts';
import { shellQuote } from '../transport/ssh.ts';
import { inspectFunctions } from './inspect.ts';
import { checksDir, createdDirsFunctions, generationsDir, originalsDir, pendingFile, restoreFunction } from './target-paths.ts';

export interface ApplyInput {
  plan: DeployPlan;
  /** Packages to install that the target lacks, and to purge that it has. */
  install: string[];
  purge: string[];
  /** Units the new generation manages (a template as `x@*.service`): a failed one is reported even when this deploy did not touch it. */
  managedUnits: string[];
  /** Generations to keep. */
  keep: number;
  /** Written into the generation: when, from where, by whom. */
  meta: Record<string, string>;
}

/** Take the current generation's records again (the probe found paths moved, but each as the generation says). */
export const recordStateScript = `set -euo pipefail
export LC_ALL=C
G=${generationsDir}
${inspectFunctions}
if [ -f "$G/current/lists/paths" ] && ! [ -e ${pendingFile} ]; then stat_records < "$G/current/lists/paths" > "$G/current/state.new" && mv -f "$G/current/state.new" "$G/current/state"; fi
`;

const array = (name: string, items: string[]) => `${name}=(${items.map(shellQuote).join(' ')})`;

/** The NUL-separated list files the apply reads from the staging generation's lists/ (written by listFiles). */
export function listFiles(plan: DeployPlan): Record<string, string> {
  const ops = plan.operations;
  const list = (items: string[]) => items.map((item) => `${item}\0`).join('');
  const replaced = new Set(ops.mustEmpty);
  return {
    'take-over': list(ops.takeOver.flat()),
    replace: list(ops.replace),
    remove: list(ops.remove),
    'remove-dirs': list(ops.removeDirs),
    // Directories that go for good (not replaced by a file or link): an original comes back.
    'gone-dirs': list(ops.removeDirs.filter((dir) => !replaced.has(dir))),
    'must-empty': list(ops.mustEmpty),
    'managed-under': list(ops.managedUnder),
    'make-dirs': list(ops.makeDirs),
    'fix-dirs': list(ops.fixDirs.flat()),
    place: list(ops.place),
    paths: list(ops.paths),
  };
}

/**
 * The one bash script that applies a transferred staging generation to `/`
 * and reconciles: check, packages, stop removed units, prune (what goes goes
 * first, so nothing is ever written or removed through a link that is being
 * replaced), files, daemon-reload, hook, restarts and reloads, starts,
 * health, commit. It runs while the deploy holds the machine's lock (fd 9),
 * and commits the generation only when every unit it acted on is healthy.
 * It does what the plan says: whether the hook runs, and which units restart
 * outright because they had failed, are decided on the operator's side.
 */
export function applyScript(input: ApplyInput): string {
  const { plan } = input;
  // Restart and reload act on running units only (try-), except on those the plan restarts because they had failed.
  const by = (action: string) => plan.units.filter((u) => u.action === action && !u.wasFailed).map((u) => u.unit);
  const acted = plan.units.filter((u) => u.action !== 'stop').map((u) => u.unit);
  const hookDir = initdMakefile.slice(0, initdMakefile.lastIndexOf('/'));
  return `set -euo pipefail
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
umask 022
G=${generationsDir}
S=$G/staging
L=$S/lists
O=${originalsDir}
P=${pendingFile}
${array('pkg_install', input.install)}
${array('pkg_purge', input.purge)}
${array('stop', by('stop'))}
${array('restart', by('restart'))}
${array('reload', [...by('reload-or-restart'), ...by('reload')])}
${array('start', by('start'))}
${array('restart_failed', plan.units.filter((u) => u.wasFailed).map((u) => u.unit))}
${array('acted', acted)}
${array('managed', input.managedUnits)}
daemon_reload=${plan.daemonReload ? 1 : 0}
run_hook=${plan.hook ? 1 : 0}
phase() { printf 'phase %s\\n' "$1"; }
exists() { [ -e "$1" ] || [ -L "$1" ]; }
${inspectFunctions}
${restoreFunction}
mapfile -d '' remove_dirs < "$L/remove-dirs"
mapfile -d '' must_empty < "$L/must-empty"
mapfile -d '' make_dirs < "$L/make-dirs"
# Directories homecloud made: only these are removed when empty, and only their mode and owner are its to set.
${createdDirsFunctions}
load_created

phase check
# A directory that a file or link replaces: if homecloud made it, it must hold only what homecloud manages; if not, it is kept as an original.
for dir in "\${must_empty[@]}"; do
  { [ -d "$dir" ] && ! [ -L "$dir" ]; } || continue
  if [[ -n \${created[$dir]:-} ]]; then
    extra=$( { find "$dir" -mindepth 1 -print0 | sort -z | comm -z -23 - <(sort -z "$L/managed-under") | head -z -n 1 | tr '\\0' '\\n'; } || true)
    if [[ -n $extra ]]; then printf 'refused %s holds %s, which homecloud does not manage\\n' "$dir" "$extra"; exit 4; fi
  elif exists "$O$dir"; then
    printf 'refused %s is to be replaced, but an earlier original of it is kept in %s\\n' "$dir" "$O$dir"; exit 4
  fi
done

# A layer's checks see the new tree before anything changes (a config test against it): one that fails refuses the deploy.
for check in "$S"/tree${checksDir}/*; do
  { [ -f "$check" ] && [ -x "$check" ]; } || continue
  if ! output=$(HOMECLOUD_STAGED="$S/tree" "$check" 2>&1 9>&-); then
    printf 'refused-by-check %s: %s\n' "\${check#"$S/tree"}" "$(printf '%s\n' "$output" | tail -n 5 | tr '\n' ' ')"
    exit 4
  fi
done

# From here on the machine changes: until the commit, the next deploy looks at these paths too.
mkdir -p "$G" "$O"
cat "$L/paths" >> "$P"

phase packages
if ((\${#pkg_purge[@]})); then apt-get -o DPkg::Lock::Timeout=300 purge -y -q "\${pkg_purge[@]}" >/dev/null 9>&-; fi
if ((\${#pkg_install[@]})); then apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "\${pkg_install[@]}" >/dev/null 9>&-; fi

phase stop
for unit in "\${stop[@]}"; do systemctl stop "$unit" 2>/dev/null || true; done

phase prune
# What homecloud takes over is kept as an original, unless it already is what homecloud places there (its own, say, after its state was lost).
declare -A want=()
while IFS= read -r -d '' path && IFS= read -r -d '' what; do
  exists "$path" && ! exists "$O$path" && want[$path]=$what
done < "$L/take-over"
if ((\${#want[@]})); then
  declare -A sum=()
  for path in "\${!want[@]}"; do if [[ \${want[$path]} == f:* && -f $path && ! -L $path ]]; then printf '%s\\0' "$path"; fi; done | xargs -0 -r sha256sum -z > "$S/take-over.sums"
  while IFS= read -r -d '' line; do sum[\${line:66}]=\${line:0:64}; done < "$S/take-over.sums"
  for path in "\${!want[@]}"; do
    what=\${want[$path]}
    case $what in
      f:*) [[ \${sum[$path]:-} == "\${what:2}" ]] && continue ;;
      l:*) [[ -L $path && $(readlink -- "$path") == "\${what:2}" ]] && continue ;;
      d) [[ -d $path ]] && continue ;;
    esac
    mkdir -p -- "$(dirname -- "$O$path")"
    # In the way of another type: moved aside; else copied (what is there stays until the new file lands).
    if [[ $what == d || ( -d $path && ! -L $path ) ]]; then mv -T -- "$path" "$O$path"; else cp -a -- "$path" "$O$path"; fi
  done
fi
xargs -0 -r rm -f -- < "$L/replace"
xargs -0 -r rm -f -- < "$L/remove"
if [ -s "$L/remove" ]; then restore_originals < "$L/remove"; fi
gone=()
for dir in "\${remove_dirs[@]}"; do [[ -n \${created[$dir]:-} ]] && gone+=("$dir"); done
if ((\${#gone[@]})); then printf '%s\\0' "\${gone[@]}" | xargs -0 rmdir --ignore-fail-on-non-empty --; fi
for dir in "\${gone[@]}"; do [ -d "$dir" ] || unset 'created[$dir]'; done
for dir in "\${must_empty[@]}"; do
  if [ -d "$dir" ] && ! [ -L "$dir" ]; then mkdir -p -- "$(dirname -- "$O$dir")"; mv -T -- "$dir" "$O$dir"; fi
done
if [ -s "$L/gone-dirs" ]; then restore_originals < "$L/gone-dirs"; fi

phase files
new_dirs=()
for dir in "\${make_dirs[@]}"; do [ -d "$dir" ] || new_dirs+=("$dir"); done
if ((\${#new_dirs[@]})); then
  printf '%s\\0' "\${new_dirs[@]}" | xargs -0 mkdir -p --
  for dir in "\${new_dirs[@]}"; do created[$dir]=1; done
fi
if ((\${#new_dirs[@]} + \${#gone[@]})) || ! [ -f "\${created_files[0]}" ] || ! [ -f "\${created_files[1]}" ]; then save_created; fi
while IFS= read -r -d '' mode && IFS= read -r -d '' dir; do
  { [ -d "$dir" ] && ! [ -L "$dir" ]; } || continue
  if [[ -n \${created[$dir]:-} ]]; then chmod "0$mode" -- "$dir"; chown root:root -- "$dir"
  elif (( 8#$mode & 8#1000 )); then chmod +t -- "$dir"
  else chmod -t -- "$dir"; fi
done < "$L/fix-dirs"
# -I: the list is exactly what differs, so copy it all (rsync's quick check would take same size and second for unchanged).
if [ -s "$L/place" ]; then rsync -aKI --chown=0:0 --no-implied-dirs --from0 --files-from="$L/place" "$S/tree/" /; fi

phase daemon-reload
if ((daemon_reload)); then systemctl daemon-reload; fi
# A unit that went while failed would stay listed as failed.
for unit in "\${stop[@]}"; do systemctl reset-failed "$unit" 2>/dev/null || true; done

phase hook
# The plan says whether: the tree has ${initdMakefile}.
if ((run_hook)); then make -s -C ${hookDir} 9>&-; fi

phase units
units_started=$(date +%s)
running_before=" $(systemctl list-units --state=active,activating,reloading --plain --no-legend 2>/dev/null | awk '{ printf "%s ", $1 }')"
was_running() { [[ " $running_before " == *" $1 "* ]]; }
# A deliberate restart is not a crash loop: clear the start rate limit (and the failed state) first. A unit to
# try-restart or try-reload is cleared only when it runs: one that failed since the plan stays failed and is
# reported unhealthy, never forgotten (the next deploy plans its restart, as it had failed).
for unit in "\${restart_failed[@]}" "\${start[@]}"; do [[ $unit == *'*'* ]] || systemctl reset-failed "$unit" 2>/dev/null || true; done
for unit in "\${restart[@]}" "\${reload[@]}"; do if [[ $unit != *'*'* ]] && was_running "$unit"; then systemctl reset-failed "$unit" 2>/dev/null || true; fi; done
# try-restart and try-reload leave a unit that was not running stopped, as meant (a unit a layer ships but this machine does not enable).
stays_stopped() { [[ " \${restart[*]} \${reload[*]} " == *" $1 "* ]] && ! was_running "$1"; }
# A unit whose restart or reload fails is unhealthy, even when it keeps running (a reload refused by a config test).
refused=()
for unit in "\${restart[@]}"; do systemctl try-restart "$unit" || refused+=("$unit"); done
for unit in "\${reload[@]}"; do systemctl try-reload-or-restart "$unit" || refused+=("$unit"); done
for unit in "\${restart_failed[@]}"; do systemctl restart "$unit" || refused+=("$unit"); done
for unit in "\${start[@]}"; do systemctl start --no-block "$unit" || refused+=("$unit"); done

phase health
failed=("\${refused[@]}")
# A service that crashes at once is still "active" right after its start: give it a moment.
if ((\${#acted[@]})); then sleep 0.3; fi
for unit in "\${acted[@]}"; do
  [[ $unit == *'*'* ]] && continue
  [[ " \${refused[*]} " == *" $unit "* ]] && continue
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
report() {
  printf '%s %s\\n' "$1" "$2"
  systemctl status --no-pager --lines=0 "$2" 2>&1 | sed 's/^/  /' || true
  # What the unit logged since its action (a config test's message, a crash); else its last lines.
  lines=$(journalctl --no-pager -q -n 30 -u "$2" --since "@$units_started" 2>&1 || true)
  [[ -n $lines ]] || lines=$(journalctl --no-pager -q -n 15 -u "$2" 2>&1 || true)
  printf '%s\\n' "$lines" | sed 's/^/  /'
}
if ((\${#failed[@]})); then
  for unit in "\${failed[@]}"; do report unhealthy "$unit"; done
  exit 3
fi

phase commit
stat_records < "$L/paths" > "$S/state"
manifest_sum=$(sha256sum < "$S/manifest.json") && printf '%s\\n' "\${manifest_sum%% *}" > "$S/manifest.json.sha256"
last=$(cat "$G/last" 2>/dev/null || echo 0)
n=$((last + 1))
${Object.entries(input.meta).map(([k, v]) => `printf '%s=%s\\n' ${shellQuote(k)} ${shellQuote(v)} >> "$S/meta"`).join('\n')}
mv -T "$S" "$G/$n"
rm -f "$P"
echo "$n" > "$G/last"
ln -sfn "$n" "$G/current.new" && mv -T "$G/current.new" "$G/current"
# Generations beyond the number kept go, removed in the background (a tree of many files takes a while to unlink).
find "$G" -mindepth 1 -maxdepth 1 -regex '.*/[0-9]+' -printf '%f\\n' | sort -n | head -n -${input.keep} | while read -r old; do mv -T -- "$G/$old" "$G/.old-$old"; done
if compgen -G "$G/.old-*" > /dev/null; then (setsid rm -rf -- "$G"/.old-* < /dev/null > /dev/null 2>&1 9>&- &); fi
printf 'generation %s\\n' "$n"
# What layers' units published here (a new certificate, say): other machines' trees may need it.
${publishFunction}
publish
# Units of this generation that are failed though this deploy did not act on them: said, never forgotten.
for unit in $(systemctl list-units --state=failed --plain --no-legend --full 2>/dev/null | awk '{ print $1 }'); do
  for pattern in "\${managed[@]}"; do
    # shellcheck disable=SC2053 # the pattern is a glob (x@*.service)
    if [[ $unit == $pattern ]]; then report still-failed "$unit"; break; fi
  done
done
`;
}
