#!/usr/bin/env node
// npm run bench: every bench in turn, with the arguments given after `--`.
// - `npm run bench` (or `-- --size=256MiB --runs=5 …`): bench/backup.mjs (the speed table, with
//   the arguments), then scale.mjs, memory.mjs (the 5 GiB sparse file) and s3.mjs.
// - `npm run bench -- --size 8GiB` (any size from 4 GiB): the memory check at that size alone
//   (bench/memory.mjs --size: backup, verify and restore of that much MO-like data, and the
//   sparse file), as the speed table at that size would take the better part of an hour.
// Stops at the first bench that fails, with its exit code.
import {spawnSync} from 'node:child_process'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {argValue, parseSize} from './measure.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const argv = process.argv.slice(2)
const size = argValue(argv, 'size', '')
const MEMORY_ONLY_FROM = 4 * 1024 ** 3

const plan =
  size && parseSize(size) >= MEMORY_ONLY_FROM
    ? [['memory.mjs', '--size', size]]
    : [['backup.mjs', ...argv], ['scale.mjs'], ['memory.mjs'], ['s3.mjs']]
for (const [script, ...args] of plan) {
  console.log(`\n== bench/${script} ${args.join(' ')}`)
  const r = spawnSync(process.execPath, [join(here, script), ...args], {stdio: 'inherit'})
  if (r.status !== 0) process.exit(r.status ?? 1)
}
