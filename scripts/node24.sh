#!/usr/bin/env bash
# Installs Node 24 from the npm registry's `node@24` package into the ignored .node24/ (once).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .node24/node_modules/.bin/node ]; then
  npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error --prefix .node24 node@24
fi
.node24/node_modules/.bin/node --version
