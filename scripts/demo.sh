#!/usr/bin/env bash
# The demo: homecloud's main job on its bundled example repository.
set -euo pipefail
cd "$(dirname "$0")/.."
homecloud() { node bin/homecloud.cjs "$@"; }

work=$(mktemp -d /tmp/homecloud-demo.XXXXXX)
cp -r examples/homelab/. "$work/"
rm -rf "$work/var"
echo "== The example cloud repository (a copy in $work)"
(cd "$work" && find . -path ./var -prune -o -type f -print | sort | head -40)

step() { printf '\n== %s\n$ %s\n' "$1" "${*:2}"; }

step "Machines and their layers" homecloud ls
homecloud -C "$work" ls
step "Build every machine's tree" homecloud build
homecloud -C "$work" build
step "Build again: nothing changed, nothing is written" homecloud build
homecloud -C "$work" build
step "Where did a file come from?" homecloud explain nas /usr/local/opt/hello/greeting.txt
homecloud -C "$work" explain nas /usr/local/opt/hello/greeting.txt
step "A machine's own file overrides the layer's" homecloud explain media /usr/local/opt/hello/greeting.txt
homecloud -C "$work" explain media /usr/local/opt/hello/greeting.txt
sed -i 's/"Good morning"/"Good evening"/' "$work/facts/nas.json"
step "Change a fact of nas: only nas is rebuilt" homecloud build
homecloud -C "$work" build
printf '\nThe built tree of nas is in %s/var/build/nas/tree; try: homecloud -C %s explain nas /usr/local/etc/default/hello.env\n' "$work" "$work"
