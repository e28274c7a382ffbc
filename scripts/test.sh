#!/usr/bin/env bash
# `npm test`: the whole check, each part once. Build, then the suite on Node 20 (vitest projects
# unit and integration, side by side), then the Node 24 leg (vitest project node24: what differs
# between runtimes). Beside them, at low priority so the tests come first: lint (eslint, prettier),
# the type-check of src and test, and the download of Node 24. Their output is printed when they
# are done; the command fails if any part failed.
set -uo pipefail
cd "$(dirname "$0")/.."
logs=.tmp/logs
mkdir -p "$logs"

# Runs "$@" in the background at low priority, its output in $logs/<name>.log; prints the pid.
background() {
  local name=$1
  shift
  nice -n 10 "$@" >"$logs/$name.log" 2>&1 &
  echo $!
}

# Waits for a background part; prints its log and marks the run failed if it failed.
failed=()
finish() {
  local name=$1 pid=$2
  if wait "$pid"; then
    echo "$name: ok"
  else
    echo "$name: FAILED"
    cat "$logs/$name.log"
    failed+=("$name")
  fi
}

node24=$(background node24-install bash scripts/node24.sh)
lint=$(background lint npm run --silent lint)
typecheck=$(background typecheck npm run --silent typecheck)

if npm run --silent build; then
  vitest=ok
  node node_modules/vitest/vitest.mjs run || vitest=failed
  node scripts/test-summary.mjs .tmp/vitest.json
  [ "$vitest" = ok ] || failed+=(vitest)
  finish node24-install "$node24"
  if [ -x .node24/node_modules/.bin/node ]; then
    bash scripts/test-node24.sh || failed+=(node24)
  fi
else
  failed+=(build)
  wait "$node24"
fi

finish lint "$lint"
finish typecheck "$typecheck"
if [ ${#failed[@]} -gt 0 ]; then
  echo "npm test: failed: ${failed[*]}"
  exit 1
fi

echo 'npm test: lint, type-check, build, Node 20 suite and Node 24 leg passed'
