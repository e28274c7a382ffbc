#!/usr/bin/env node
// Standalone `moctl`: the plugin is its own CLI here, with `moctl help` and `moctl plugins …`.
// plugin-help and plugin-plugins are added here, not in package.json's oclif.plugins: a host CLI
// that installs this plugin would otherwise load our copies as children, and ours would shadow
// the host's own `plugins` command.
import {execute} from '@oclif/core'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {redactDebugOutput} from '../dist/debug-redaction.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
// Before oclif logs process.argv under DEBUG: no secret may reach that output.
redactDebugOutput(process.argv.slice(2), [root])
await execute({
  dir: import.meta.url,
  loadOptions: {pluginAdditions: {core: ['@oclif/plugin-help', '@oclif/plugin-plugins']}, root},
})
