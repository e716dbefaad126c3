#!/usr/bin/env bash
# The test suite: the format check (tsc runs in pretest's build), then the
# walker-sensitive tests with the JavaScript walker (what machines without a C
# compiler use; output shown on failure), then the unit tests with the native
# walker while the sandbox images are made, then the end-to-end tests on
# sandbox machines (root, systemd-nspawn and debootstrap: scripts/setup-host.sh).
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
# The sandbox images are made beside the unit tests, once each; end-to-end files that found one missing each made
# their own copy, holding a test slot for minutes.
logs=$(mktemp -d)
images=()
for profile in base cloud; do
  node --import tsx scripts/sandbox-image.ts "$profile" >"$logs/$profile" 2>&1 &
  images+=($!)
done
# Ended by PID if the tests stop first (a debootstrap half done leaves only its own building directory).
trap 'kill "${images[@]}" 2>/dev/null || true; rm -rf "$logs"' EXIT
unit_status=0
node --import tsx --test --test-concurrency=2 test/unit/*.test.ts || unit_status=$?
for pid in "${images[@]}"; do
  if ! wait "$pid"; then
    cat "$logs"/* >&2
    echo "A sandbox image could not be made (above)." >&2
    exit 1
  fi
done
images=()
# Every test runs, and a failure of either part fails the suite.
e2e_status=0
node --import tsx --test --test-concurrency=2 test/e2e/*.test.ts || e2e_status=$?
((unit_status == 0)) || exit "$unit_status"
exit "$e2e_status"
