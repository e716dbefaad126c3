#!/usr/bin/env bash
# The demo: homecloud's main job on its bundled example repository, against
# sandbox machines booted on this host.
set -euo pipefail
cd "$(dirname "$0")/.."
project=$PWD
homecloud() { node "$project/bin/homecloud.cjs" "$@"; }
step() { printf '\n== %s\n$ homecloud %s\n' "$1" "${*:2}"; }

work=$(mktemp -d /tmp/homecloud-demo.XXXXXX)
cp -r examples/homelab/. "$work/"
rm -rf "$work/var"
export HOMECLOUD_SANDBOX=/var/lib/homecloud/demo
cd "$work"
echo "== The example cloud repository (a copy in $work)"
find . -path ./var -prune -o -type f -print | sort | head -40

step "Machines and their layers" ls
homecloud ls
step "Build every machine's tree" build
homecloud build
step "Build again: nothing changed, nothing is written" build
homecloud build
step "Where did a file come from?" explain nas /usr/local/opt/hello/greeting.txt
homecloud explain nas /usr/local/opt/hello/greeting.txt
step "A machine's own file overrides the layer's" explain media /usr/local/opt/hello/greeting.txt
homecloud explain media /usr/local/opt/hello/greeting.txt
sed -i 's/"Good morning"/"Good evening"/' facts/nas.json
step "Change a fact of nas: only nas is rebuilt" build
homecloud build
step "Boot the three machines as sandbox machines (real systemd, copy-on-write clones)" sandbox up gateway nas media
homecloud sandbox up gateway nas media
step "Read their facts over SSH (one round trip each)" --sandbox facts
homecloud --sandbox facts
step "What a deploy to media will do, and why (the lambda layer's generator made its function's socket)" --sandbox plan media
homecloud --sandbox plan media
step "Where did the socket come from?" explain media /usr/local/lib/systemd/system/lambda-time.socket
homecloud explain media /usr/local/lib/systemd/system/lambda-time.socket
step "Deploy: transfer the trees, start what they enable" --sandbox deploy
homecloud --sandbox deploy
step "Deploy again: nothing to do, nothing sent, nothing restarted" --sandbox deploy
homecloud --sandbox deploy
sed -i 's/"Good evening"/"Good night"/' facts/nas.json
step "Change nas's greeting: only hello.service on nas restarts" --sandbox deploy
homecloud --sandbox deploy
step "Run a command on all of them" --sandbox exec nas media -- cat /usr/local/opt/hello/greeting.txt
homecloud --sandbox exec nas media -- cat /usr/local/opt/hello/greeting.txt
step "media runs nginx and a lambda: a process only while it answers" --sandbox exec media -- curl -s http://localhost/time/
homecloud --sandbox exec media -- curl -s http://localhost/time/

cat <<NEXT

The built tree of nas is in $work/var/build/nas/tree. Try next:
  cd $work
  HOMECLOUD_SANDBOX=$HOMECLOUD_SANDBOX node $project/bin/homecloud.cjs sandbox ssh nas
  node $project/bin/homecloud.cjs explain nas /usr/local/etc/default/hello.env
When done: HOMECLOUD_SANDBOX=$HOMECLOUD_SANDBOX node $project/bin/homecloud.cjs sandbox down --all
NEXT
