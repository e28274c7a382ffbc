#!/usr/bin/env bash
# Installs Node 24 from the npm registry's `node@24` package into the ignored .node24/ (once).
# --host: then installs the host CLI the Node 24 leg uses (test/helpers/host.ts, keyed by Node's
# major), so `npm test` does it while the Node 20 suite runs instead of after it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .node24/node_modules/.bin/node ]; then
  npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error --prefix .node24 node@24
fi
.node24/node_modules/.bin/node --version
if [ "${1:-}" = --host ]; then
  PATH="$PWD/.node24/node_modules/.bin:$PATH" node --import tsx --input-type=module \
    -e "const {installedHost} = await import('./test/helpers/host.ts'); console.log(await installedHost())"
fi
