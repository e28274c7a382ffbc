#!/usr/bin/env bash
# Installs Node 24 from the npm registry's `node@24` package into $TEST_CACHE/node24 (once per
# machine: scripts/test-cache.sh), and prints its bin folder last. The install goes into a temp dir
# renamed into place, so runs side by side (other checkouts) never see half of it.
# --host: then installs the host CLI (test/helpers/host.ts; one install serves both runtimes), so
# `npm test` does it beside the build instead of in the first host test that needs it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/test-cache.sh
dir="$TEST_CACHE/node24"
if [ ! -x "$dir/node_modules/.bin/node" ]; then
  mkdir -p "$TEST_CACHE"
  staging=$(mktemp -d "$TEST_CACHE/.node24-XXXXXX")
  trap 'rm -rf "$staging"' EXIT
  npm install --no-save --no-package-lock --no-audit --no-fund --prefer-offline --loglevel=error --prefix "$staging" node@24
  # Another run may have put one in place meanwhile: keep that one.
  mv -T "$staging" "$dir" 2>/dev/null || true
fi
"$dir/node_modules/.bin/node" --version >&2
if [ "${1:-}" = --host ]; then
  # Node 24 strips the types of test/helpers/host.ts itself; scripts/ts-resolve.mjs maps its
  # `./x.js` imports to the x.ts files.
  PATH="$dir/node_modules/.bin:$PATH" node \
    --import "data:text/javascript,import {register} from 'node:module'; register('./scripts/ts-resolve.mjs', 'file://$PWD/')" \
    --input-type=module \
    -e "const {installedHost} = await import('./test/helpers/host.ts'); console.log(await installedHost())"
fi
echo "$dir/node_modules/.bin"
