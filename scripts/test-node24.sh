#!/usr/bin/env bash
# The Node 24 leg: vitest's node24 project (vitest.config.ts says which files and why) on Node 24,
# from the npm registry's `node@24` package (scripts/node24.sh). Needs dist/ built (`npm run build`).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(bash scripts/node24.sh | tail -n 1)
export PATH="$bin:$PATH"
echo "node $(node --version): the node24 leg"
status=0
node node_modules/vitest/vitest.mjs run --project node24 --outputFile.json=.tmp/vitest-node24.json || status=$?
node scripts/test-summary.mjs .tmp/vitest-node24.json
exit $status
