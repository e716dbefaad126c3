# generations.bash: list the generations a machine keeps, oldest first: a line
# "generation N current" (or "generation N -"), then its meta file's
# KEY=VALUE lines indented by two spaces (listGenerations, deploy.ts).
#
# Data in front (generationsScript, script.ts): generations_dir.
# shellcheck shell=bash disable=SC2154

cd "$R$generations_dir" 2>/dev/null || exit 0
current=$(readlink current 2>/dev/null || true)
for n in $(printf '%s\n' * | grep -E '^[0-9]+$' | sort -n); do
  if [[ $n == "$current" ]]; then mark=current; else mark=-; fi
  printf 'generation %s %s\n' "$n" "$mark"
  sed 's/^/  /' "$n/meta" 2>/dev/null || true
done
