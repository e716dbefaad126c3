import type { ManifestEntries } from '../build/manifest.ts';
import type { Plan } from '../plan/reconcile.ts';
import { shellQuote } from '../transport/ssh.ts';
import { applyLock, createdDirsFile, generationsDir, originalsDir } from './target-paths.ts';

/**
 * Runs the apply script (its standard input) detached from the connection,
 * so that a cut connection or a Ctrl-C where the deploy runs never stops it
 * halfway; its output is followed live, and it keeps the lock to its end.
 */
export const detachedApply = `set -eu
G=${generationsDir}
mkdir -p "$G/staging"
exec 9>>${applyLock}
flock -n 9 || { echo "another apply is running on this machine" >&2; exit 75; }
cat > "$G/staging/apply.sh"
out=/var/lib/homecloud/apply.out err=/var/lib/homecloud/apply.err
: > "$out"; : > "$err"
setsid bash "$G/staging/apply.sh" >> "$out" 2>> "$err" < /dev/null &
pid=$!
tail -s 0.02 -n +1 -f --pid="$pid" "$out" || true
status=0
wait "$pid" || status=$?
cat "$err" >&2
exit "$status"
`;

export interface ApplyInput {
  plan: Plan;
  next: ManifestEntries;
  previous: ManifestEntries;
  /** Packages to install that the target lacks, and to purge that it has. */
  install: string[];
  purge: string[];
  /** Generations to keep. */
  keep: number;
  /** Written into the generation: when, from where, by whom. */
  meta: Record<string, string>;
}

const array = (name: string, items: string[]) => `${name}=(${items.map(shellQuote).join(' ')})`;

/**
 * The one bash script that applies a transferred staging generation to `/`
 * and reconciles, in DESIGN.md's order: packages, stop removed units, files,
 * prune, daemon-reload, hook, restarts and reloads, starts, health, commit.
 * Nothing under `/` changes before it runs, and it commits the generation
 * only when every unit it acted on is healthy.
 */
export function applyScript(input: ApplyInput): string {
  const { plan, next, previous } = input;
  const install = [...plan.added, ...plan.changed].sort();
  // Paths that were not homecloud's before: what is there now is kept, to be restored when homecloud lets go.
  const takeOver = plan.added.filter((path) => !previous[path]);
  const remove = plan.removed.filter((path) => previous[path]!.type !== 'dir').sort().reverse();
  const removeDirs = Object.keys(previous).filter((path) => previous[path]!.type === 'dir' && !next[path]).sort().reverse();
  // Only directories that need more than the default mode (a .pin's sticky bit): system directories keep theirs.
  const dirs = Object.keys(next).filter((path) => { const entry = next[path]!; return entry.type === 'dir' && entry.mode !== '0755'; }).sort();
  const allDirs = Object.keys(next).filter((path) => next[path]!.type === 'dir').sort();
  const by = (action: string) => plan.units.filter((u) => u.action === action).map((u) => u.unit);
  const acted = plan.units.filter((u) => u.action !== 'stop').map((u) => u.unit);
  return `set -euo pipefail
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
G=${generationsDir}
S=$G/staging
O=${originalsDir}
C=${createdDirsFile}
mkdir -p "$(dirname "$C")"
${array('install', install)}
${array('take_over', takeOver)}
${array('remove', remove)}
${array('remove_dirs', removeDirs)}
${array('dirs', dirs)}
${array('all_dirs', allDirs)}
${array('pkg_install', input.install)}
${array('pkg_purge', input.purge)}
${array('stop', by('stop'))}
${array('restart', by('restart'))}
${array('reload', [...by('reload-or-restart'), ...by('reload')])}
${array('start', by('start'))}
${array('acted', acted)}
daemon_reload=${plan.daemonReload ? 1 : 0}
phase() { printf 'phase %s\\n' "$1"; }
# Once files are in place, a failure keeps what was applied as generations/failed: the next plan compares with it.
applied=0
keep_failed() { if ((applied)) && [ -d "$S" ]; then rm -rf "$G/failed"; mv -T "$S" "$G/failed"; fi; }
trap keep_failed EXIT
exists() { [ -e "$1" ] || [ -L "$1" ]; }

phase packages
if ((\${#pkg_purge[@]})); then apt-get purge -y -q "\${pkg_purge[@]}" >/dev/null; fi
if ((\${#pkg_install[@]})); then apt-get install -y -q --no-install-recommends "\${pkg_install[@]}" >/dev/null; fi

phase stop
for unit in "\${stop[@]}"; do systemctl stop "$unit" 2>/dev/null || true; done

phase files
for path in "\${take_over[@]}"; do
  if exists "$path" && ! exists "$O$path"; then mkdir -p "$(dirname "$O$path")"; cp -a "$path" "$O$path"; fi
done
# Directories homecloud makes are its to remove later; those the distro had stay.
for dir in "\${all_dirs[@]}"; do [ -d "$dir" ] || printf '%s\\n' "$dir" >> "$C"; done
applied=1
# -I: the list is exactly what changed, so copy it all (rsync's quick check takes same size and same second for unchanged).
if ((\${#install[@]})); then printf '%s\\0' "\${install[@]}" | rsync -aKI --no-implied-dirs --from0 --files-from=- "$S/tree/" /; fi
# Directory modes beyond the default (a .pin directory's sticky bit).
for dir in "\${dirs[@]}"; do if [ -d "$S/tree$dir" ]; then chmod --reference="$S/tree$dir" "$dir" 2>/dev/null || true; fi; done

phase prune
for path in "\${remove[@]}"; do
  rm -f -- "$path"
  if exists "$O$path"; then mkdir -p "$(dirname "$path")"; mv -- "$O$path" "$path"; fi
done
for dir in "\${remove_dirs[@]}"; do if grep -Fxq -- "$dir" "$C" 2>/dev/null; then rmdir -- "$dir" 2>/dev/null || true; fi; done

phase daemon-reload
if ((daemon_reload)); then systemctl daemon-reload; fi

phase hook
if [ -f /usr/local/opt/initd/Makefile ]; then make -s -C /usr/local/opt/initd; fi

phase units
units_started=$(date +%s)
# try-: a stopped unit stays stopped; a failed one (say, by the change before) is meant to run, and restarts.
failed_before=" $(systemctl list-units --state=failed --plain --no-legend 2>/dev/null | awk '{ printf "%s ", $1 }')"
running_before=" $(systemctl list-units --state=active,activating,reloading --plain --no-legend 2>/dev/null | awk '{ printf "%s ", $1 }')"
# A deliberate restart is not a crash loop: clear the start rate limit (and the failed state) first.
for unit in "\${restart[@]}" "\${reload[@]}" "\${start[@]}"; do [[ $unit == *'*'* ]] || systemctl reset-failed "$unit" 2>/dev/null || true; done
was_failed() { [[ " $failed_before " == *" $1 "* ]]; }
# try-restart and try-reload leave a unit that was not running stopped, as meant (a unit a layer ships but this machine does not enable).
stays_stopped() { [[ " \${restart[*]} \${reload[*]} " == *" $1 "* && " $running_before " != *" $1 "* ]] && ! was_failed "$1"; }
# A unit whose restart or reload fails is unhealthy, even when it keeps running (a reload refused by a config test).
refused=()
for unit in "\${restart[@]}"; do if was_failed "$unit"; then systemctl restart "$unit"; else systemctl try-restart "$unit"; fi || refused+=("$unit"); done
for unit in "\${reload[@]}"; do if was_failed "$unit"; then systemctl restart "$unit"; else systemctl try-reload-or-restart "$unit"; fi || refused+=("$unit"); done
for unit in "\${start[@]}"; do systemctl start --no-block "$unit" || refused+=("$unit"); done

phase health
failed=("\${refused[@]}")
# A service that crashes at once is still "active" right after its start: give it a moment.
if ((\${#acted[@]})); then sleep 0.3; fi
for unit in "\${acted[@]}"; do
  [[ $unit == *'*'* ]] && continue
  [[ " \${refused[*]} " == *" $unit "* ]] && continue
  for _ in $(seq 100); do
    state=$(systemctl show -p ActiveState --value "$unit")
    [[ $state == activating || $state == deactivating || $state == reloading ]] || break
    sleep 0.1
  done
  if [[ $state == failed ]] || { [[ $state != active ]] && ! stays_stopped "$unit" && [[ $(systemctl show -p Type --value "$unit") != oneshot ]] && [[ $unit != *.timer ]] && [[ $unit != *.target ]]; }; then
    failed+=("$unit")
  fi
done
if ((\${#failed[@]})); then
  for unit in "\${failed[@]}"; do
    printf 'unhealthy %s\\n' "$unit"
    systemctl status --no-pager --lines=0 "$unit" 2>&1 | sed 's/^/  /' || true
    # What the unit logged since its action (a config test's message, a crash); else its last lines.
    lines=$(journalctl --no-pager -q -n 30 -u "$unit" --since "@$units_started" 2>&1 || true)
    [[ -n $lines ]] || lines=$(journalctl --no-pager -q -n 15 -u "$unit" 2>&1 || true)
    printf '%s\\n' "$lines" | sed 's/^/  /'
  done
  exit 3
fi

phase commit
last=$(cat "$G/last" 2>/dev/null || echo 0)
n=$((last + 1))
${Object.entries(input.meta).map(([k, v]) => `printf '%s=%s\\n' ${shellQuote(k)} ${shellQuote(v)} >> "$S/meta"`).join('\n')}
mv -T "$S" "$G/$n"
rm -rf "$G/failed"
echo "$n" > "$G/last"
ln -sfn "$n" "$G/current.new" && mv -T "$G/current.new" "$G/current"
find "$G" -mindepth 1 -maxdepth 1 -regex '.*/[0-9]+' -printf '%f\\n' | sort -n | head -n -${input.keep} | while read -r old; do rm -rf -- "\${G:?}/$old"; done
printf 'generation %s\\n' "$n"
`;
}
