#!/usr/bin/env node
// Standalone `moctl`: the plugin is its own CLI here, with `moctl help` and, when
// @oclif/plugin-plugins is installed beside it, `moctl plugins …`. Both are added here, not in
// package.json's oclif.plugins: a host CLI that installs this plugin would otherwise load our
// copies as children, and ours would shadow the host's own `plugins` command. plugin-plugins (with
// its npm, ~19 MB) is an optional peer dependency, so a host, which has its own, does not get a
// second copy; oclif reads the names of these core plugins from bin/standalone/package.json.
import {execute} from '@oclif/core'
import {existsSync} from 'node:fs'
import {createRequire} from 'node:module'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {redactDebugOutput} from '../dist/debug-redaction.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const standalone = join(root, 'bin', 'standalone')
// Where Node would find the package from bin/standalone: our node_modules, then the folders above
// (a global install's siblings among them). A missing core plugin would make oclif warn on every run.
const installed = (name) =>
  createRequire(join(standalone, 'package.json'))
    .resolve.paths(name)
    .some((dir) => existsSync(join(dir, name, 'package.json')))
const core = ['@oclif/plugin-help', '@oclif/plugin-plugins'].filter((name) => installed(name))
if (/^plugins(:|$)/.test(process.argv[2] ?? '') && !core.includes('@oclif/plugin-plugins')) {
  process.stderr.write(
    'Error: moctl plugins needs @oclif/plugin-plugins\nHint: npm install -g @oclif/plugin-plugins@5 (beside moctl)\n',
  )
  process.exitCode = 2
} else {
  // Before oclif logs process.argv under DEBUG: no secret may reach that output.
  redactDebugOutput(process.argv.slice(2), [root])
  await execute({dir: import.meta.url, loadOptions: {pluginAdditions: {core, path: standalone}, root}})
}
