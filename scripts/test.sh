#!/usr/bin/env bash
# `npm test`: the whole check, each part once. Build, then the suite on Node 20 (vitest projects
# unit and integration side by side), then the Node 24 leg (vitest project
# node24: what differs between runtimes). Beside them, at low priority so the tests come first:
# lint (eslint, prettier), the type-check of src and test, and the download of Node 24 and its
# host CLI. Their output is printed when they are done; the command fails if any part failed.
# Arguments go to the Node 20 vitest run (`npm test -- test/unit/lib/archive` runs only those).
set -uo pipefail
cd "$(dirname "$0")/.."
logs=.tmp/logs
mkdir -p "$logs"

# Starts "$@" in the background at low priority, its output in $logs/<name>.log.
declare -A pids
background() {
  local name=$1
  shift
  nice -n 10 "$@" >"$logs/$name.log" 2>&1 &
  pids[$name]=$!
}

# Waits for a background part; prints its log and marks the run failed if it failed.
failed=()
finish() {
  local name=$1
  if wait "${pids[$name]}"; then
    echo "$name: ok"
  else
    echo "$name: FAILED ($logs/$name.log)"
    cat "$logs/$name.log"
    failed+=("$name")
  fi
}

background node24-install bash scripts/node24.sh --host
background lint npm run --silent lint
background typecheck npm run --silent typecheck

if npm run --silent build; then
  node node_modules/vitest/vitest.mjs run "$@" || failed+=(vitest)
  node scripts/test-summary.mjs .tmp/vitest.json
  finish node24-install
  if [ -x .node24/node_modules/.bin/node ]; then
    bash scripts/test-node24.sh || failed+=(node24)
  fi
else
  failed+=(build)
  finish node24-install
fi

finish lint
finish typecheck
if [ ${#failed[@]} -gt 0 ]; then
  echo "npm test: failed: ${failed[*]}"
  exit 1
fi

echo 'npm test: lint, type-check, build, the Node 20 suite and the Node 24 leg passed'
