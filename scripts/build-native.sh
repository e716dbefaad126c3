#!/usr/bin/env bash
# Build the optional native tree signature (native/tree_signature.c). Without a
# C compiler or Node's headers homecloud works the same, with slower no-change builds.
set -uo pipefail
cd "$(dirname "$0")/.."
[[ build/Release/tree_signature.node -nt native/tree_signature.c ]] && exit 0
# npm's own node-gyp: on PATH inside npm scripts, else next to npm.
if command -v node-gyp >/dev/null; then gyp=(node-gyp)
else gyp=(node "$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"); fi
nodedir=${npm_config_nodedir:-}
[[ -z $nodedir && -f /usr/include/node/node_api.h ]] && nodedir=/usr
if ! log=$("${gyp[@]}" rebuild ${nodedir:+--nodedir="$nodedir"} 2>&1); then
  echo "note: the native tree signature was not built (builds fall back to JavaScript):" >&2
  grep -m3 -iE 'error' <<<"$log" >&2
fi
exit 0
