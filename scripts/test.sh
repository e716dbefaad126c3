#!/usr/bin/env bash
# The test suite: the format check (tsc runs in pretest's build), then the
# walker-sensitive tests with the JavaScript walker (what machines without a C
# compiler use; output shown on failure), then the whole suite with the native
# walker, and the end-to-end tests on sandbox machines (root, systemd-nspawn
# and debootstrap: scripts/setup-host.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# The code keeps one format (.prettierrc.json): npm run format fixes what this finds.
if ! npx --no-install prettier --check --log-level warn src test bench scripts; then
  echo "Run npm run format to format the files above." >&2
  exit 1
fi
walker_tests=(test/unit/quick.test.ts test/unit/incremental.test.ts test/unit/rules.test.ts test/unit/merge.test.ts test/unit/unreadable.test.ts)
if ! output=$(HOMECLOUD_NATIVE=0 node --import tsx --test "${walker_tests[@]}" 2>&1); then
  printf '%s\n' "$output"
  echo "The JavaScript walker failed the tests above." >&2
  exit 1
fi
exec node --import tsx --test --test-concurrency=2 test/unit/*.test.ts test/e2e/*.test.ts
