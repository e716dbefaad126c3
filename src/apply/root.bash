# root.bash: where a target script finds the machine's files. Every script
# homecloud runs on a target starts with it (after its data), and touches an
# absolute path PATH as "$R$PATH". R is empty on machines; the transcript
# tests set HOMECLOUD_ROOT to a scratch directory, so that the scripts run
# there without root. Nothing here runs a process when R is empty.
# shellcheck shell=bash

R=${HOMECLOUD_ROOT:-}
# R goes into sed expressions (rooted, record_paths, inspect): a plain path only.
if [[ $R == *[!A-Za-z0-9/._-]* ]]; then
  echo "HOMECLOUD_ROOT must be a path of letters, digits, '/', '.', '_' and '-'" >&2
  exit 2
fi

# rooted COMMAND...: run COMMAND with the NUL-separated absolute paths on
# standard input each put under $R.
# shellcheck disable=SC2317 # not every script calls it
rooted() {
  if [[ -n $R ]]; then sed -z "s|^|$R|" | "$@"; else "$@"; fi
}
