# record-state.bash: take the current generation's stat records again, when
# the probe found paths moved but each as the generation says (touched, or a
# directory's entries changed), so that the next probe need not look at them.
#
# Data in front (recordStateScript, script.ts): generations_dir, pending_file.
# stat_records comes before (inspect.bash).
# shellcheck shell=bash disable=SC2154

set -euo pipefail
export LC_ALL=C
G=$R$generations_dir
if [ -f "$G/current/lists/paths" ] && ! [ -e "$R$pending_file" ]; then
  stat_records < "$G/current/lists/paths" > "$G/current/state.new" && mv -f "$G/current/state.new" "$G/current/state"
fi
