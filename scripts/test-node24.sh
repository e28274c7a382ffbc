#!/usr/bin/env bash
# Runs the whole test suite again on Node 24 (the machines here have Node 20; both must pass).
# Node 24 comes from the npm registry's `node@24` package, installed into an ignored local folder.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .node24/node_modules/.bin/node ]; then
  npm install --no-save --no-package-lock --prefix .node24 node@24 >/dev/null
fi
export PATH="$PWD/.node24/node_modules/.bin:$PATH"
echo "node $(node --version)"
node node_modules/vitest/vitest.mjs run
node scripts/test-summary.mjs
