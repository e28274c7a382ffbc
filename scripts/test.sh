#!/usr/bin/env bash
# `npm test`: the whole check, each part once. Build, then the suite on Node 20 (vitest projects
# unit and integration side by side). Beside them, at low priority so the Node 20 suite comes
# first: lint (eslint, prettier), the type-check of src and test, and the Node 24 leg (vitest
# project node24: what differs between runtimes): Node 24 and the host CLI are downloaded while
# the build runs, and the leg starts once the build is done, filling the time the Node 20 suite
# spends waiting on its child processes instead of running alone after it. Their output is
# printed when they are done; the command fails if any part failed.
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

# The build writes its outcome here; the Node 24 leg waits for it (it runs dist/).
built=$logs/build.status
rm -f "$built"
background node24 bash -c 'bash scripts/node24.sh --host || exit
  until [ -e "$1" ]; do sleep 1; done
  if [ "$(cat "$1")" != ok ]; then echo "the build failed: the node24 leg did not run"; exit 1; fi
  bash scripts/test-node24.sh' node24 "$built"
# `npm run lint` as two jobs: eslint and prettier are single-threaded, and lint was the run's
# last minute alone on one core while the other stood idle.
background eslint node node_modules/eslint/bin/eslint.js .
background prettier node node_modules/prettier/bin/prettier.cjs --check .
background typecheck npm run --silent typecheck

if npm run --silent build; then
  echo ok >"$built"
  node node_modules/vitest/vitest.mjs run "$@" || failed+=(vitest)
  node scripts/test-summary.mjs .tmp/vitest.json
else
  echo failed >"$built"
  failed+=(build)
fi

finish node24
finish eslint
finish prettier
finish typecheck
if [ ${#failed[@]} -gt 0 ]; then
  echo "npm test: failed: ${failed[*]}"
  exit 1
fi

echo 'npm test: lint, type-check, build, the Node 20 suite and the Node 24 leg passed'
