#!/usr/bin/env node
// Writes oclif.manifest.json (the commands' flags and help, so a host CLI lists them without
// loading every command) with @oclif/core's own Plugin loader: what `oclif manifest` does for a
// plugin without JIT plugins, without the `oclif` dev package (~190 packages that `npm ci` would
// install for this one step). Run after tsc has written dist/.
import {Plugin} from '@oclif/core'
import {writeFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const plugin = new Plugin({
  errorOnManifestCreate: true,
  ignoreManifest: true,
  respectNoCacheDefault: true,
  root,
  type: 'core',
})
await plugin.load()
writeFileSync(join(root, 'oclif.manifest.json'), JSON.stringify(plugin.manifest, null, 2))
