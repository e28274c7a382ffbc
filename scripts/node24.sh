#!/usr/bin/env bash
# Installs Node 24 from the npm registry's `node@24` package into the ignored .node24/ (once).
# --host: then installs the host CLI (test/helpers/host.ts; one install serves both runtimes), so
# `npm test` does it beside the build instead of in the first host test that needs it.
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
