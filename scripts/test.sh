#!/usr/bin/env bash
# `npm test`: the whole check, each part once. Build and type-check (one TypeScript program:
# scripts/build-check.mjs), then the suite on Node 20 (vitest projects unit and integration side
# by side). Beside them: lint (eslint, prettier, each with its results cache in the machine's test
# cache: scripts/lint.mjs), at low priority, and the Node 24 leg (vitest project node24: what
# differs between runtimes): Node 24 and the host CLI are downloaded while the build runs, and the
# leg starts once the build is done, sharing the cores with the Node 20 suite. At low priority it
# was starved until the suite ended and then ran alone, one core idle, for ~28 s: a clean clone's
# run took 311 s, and 292 s at the same priority. Their output is printed when they are done; the
# command fails if any part failed.
# Arguments go to the Node 20 vitest run (`npm test -- test/unit/lib/archive` runs only those).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/test-cache.sh
logs=.tmp/logs
mkdir -p "$logs"

# glibc's malloc asks for transparent huge pages for what it maps (glibc 2.35 and newer; ignored
# by older ones and other libcs): scrypt's 256 MiB (2^18, the default work factor the passphrase
# tests pay) took 1.4 CPU-s in 65536 page faults and TLB misses, 0.6 with huge pages; the unit
# project 116 -> 108 CPU-s, five scrypt-heavy integration files 72 -> 51-62 (interleaved). Only
# the tests' processes; GLIBC_TUNABLES set by the caller wins.
export GLIBC_TUNABLES="${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}"

# Starts "$@" in the background (at the priority nice $NICE, default low), its output in $logs/<name>.log.
declare -A pids
background() {
  local name=$1
  shift
  nice -n "${NICE:-10}" "$@" >"$logs/$name.log" 2>&1 &
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
NICE=0 background node24 bash -c 'bash scripts/node24.sh --host || exit
  until [ -e "$1" ]; do sleep 1; done
  if [ "$(cat "$1")" != ok ]; then echo "the build failed: the node24 leg did not run"; exit 1; fi
  bash scripts/test-node24.sh' node24 "$built"
# `npm run lint` as two jobs: eslint and prettier are single-threaded, and lint was the run's
# last minute alone on one core while the other stood idle.
background eslint node scripts/lint.mjs eslint "$TEST_CACHE/lint"
background prettier node scripts/lint.mjs prettier "$TEST_CACHE/lint"

# `npm run build` and `npm run typecheck` in one program: src/ was parsed and checked twice.
# Exit 2: dist/ is built, but test/ does not type-check (the suite still runs; the run fails).
node scripts/build-check.mjs
checked=$?
if [ $checked = 2 ]; then
  echo "typecheck: FAILED (above)"
  failed+=(typecheck)
fi
# vitest runs the files that took longest last time first (its results cache, in
# node_modules/.vite/vitest/<sha1 of "">/): a clean clone has none, so it went by file size and
# ended on a few long files with one worker busy. The results are kept in the machine's test
# cache between runs; a checkout's own, when it has one, is left alone. They only order the files.
results=node_modules/.vite/vitest/$(printf '' | sha1sum | cut -c1-40)/results.json
if [ ! -e "$results" ] && [ -e "$TEST_CACHE/vitest-results.json" ]; then
  mkdir -p "$(dirname "$results")" && cp "$TEST_CACHE/vitest-results.json" "$results"
fi
if [ $checked = 0 ] || [ $checked = 2 ]; then
  echo ok >"$built"
  node node_modules/vitest/vitest.mjs run "$@" || failed+=(vitest)
  if [ -e "$results" ] && mkdir -p "$TEST_CACHE"; then
    cp "$results" "$TEST_CACHE/.vitest-results.$$" && mv "$TEST_CACHE/.vitest-results.$$" "$TEST_CACHE/vitest-results.json"
  fi
  node scripts/test-summary.mjs .tmp/vitest.json
else
  echo failed >"$built"
  failed+=(build)
fi

finish node24
finish eslint
finish prettier
if [ ${#failed[@]} -gt 0 ]; then
  echo "npm test: failed: ${failed[*]}"
  exit 1
fi

echo 'npm test: lint, type-check, build, the Node 20 suite and the Node 24 leg passed'
