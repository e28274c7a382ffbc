#!/usr/bin/env node
// npm run bench (after the others), alone: npm run bench:memory. The memory goal: backup, verify
// and restore each stay under 256 MiB peak RSS, at any data size.
//
// Always: a sparse 5 GiB file with 13 bytes of data in the middle (the archive is a zstd bomb of
// ~150 KiB). With --size (8GiB, as `npm run bench -- --size 8GiB` passes it): also a generated
// MO-like data dir of that size (../shared/bench/make-mo-data.mjs), after checking with df that
// the data, its archive and its restored copy fit the disk (refused, exit 2, when they do not).
// Runs the real CLI (bin/run.js → dist/: `npm run build` first) for backup, verify and restore
// with bench/rss-probe.mjs loaded by --import, which writes the process's peak RSS at exit.
// Prints the peak RSS of each and fails (exit 1) when one reaches the bound, or when a command
// fails or the restored file is not the one backed up. The sparse-file round trip itself is
// tested (small) in test/integration/archive-limits.test.ts.
import {spawnSync} from 'node:child_process'
import {
  closeSync,
  ftruncateSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'

import {argValue, duBytes, freeBytes, parseSize} from './measure.mjs'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const run = join(root, 'bin', 'run.js')
const probe = pathToFileURL(join(root, 'bench', 'rss-probe.mjs')).href
const {generateKeyFile} = await import(pathToFileURL(join(root, 'dist', 'lib', 'keys.js')).href)

const GiB = 1024 * 1024 * 1024
const LIMIT_MIB = 256
const MIDDLE = Buffer.from('in the middle')

const SPARSE = 5 * GiB
const sizeArg = argValue(process.argv.slice(2), 'size', '')
const size = sizeArg ? parseSize(sizeArg) : 0
if (Number.isNaN(size)) {
  console.error(`bench: --size ${sizeArg} is not a size: pass --size 8GiB`)
  process.exit(2)
}

// The generated data, its archive (about half of it at zstd -3) and its restored copy, plus 10%.
if (size > 0 && freeBytes(tmpdir()) < size * 2.6) {
  console.error(
    `bench: --size ${sizeArg} needs about ${((size * 2.6) / GiB).toFixed(1)} GiB free in ${tmpdir()} ` +
      `(data, archive and restored copy); ${(freeBytes(tmpdir()) / GiB).toFixed(1)} GiB are: free some, or set TMPDIR to a larger disk`,
  )
  process.exit(2)
}

const work = mkdtempSync(join(tmpdir(), 'moctl-br-bench-memory-'))
const failures = []

/** Runs `br …args` with the probe loaded; its peak RSS in MiB, wall seconds and stdout. */
function measured(name, args, bytes) {
  const rssFile = join(work, `${name}.rss`)
  // The bench must not read the developer's own settings or keys.
  const env = {...process.env, MOCTL_TEST_RSS_FILE: rssFile, XDG_CONFIG_HOME: join(work, 'config')}
  for (const key of Object.keys(env)) if (key.startsWith('MOCTL_BR_')) delete env[key]
  const started = performance.now()
  const r = spawnSync(process.execPath, [`--import=${probe}`, run, 'br', ...args], {encoding: 'utf8', env})
  const wall = (performance.now() - started) / 1000
  if (r.status !== 0) throw new Error(`bench: br ${name} failed (exit ${r.status}): ${r.stderr}`)
  const rssMiB = Number(readFileSync(rssFile, 'utf8')) / 1024
  const rate = bytes ? `, ${(bytes / 1e6 / wall).toFixed(0)} MB/s` : ''
  console.log(`${name.padEnd(16)} peak RSS ${rssMiB.toFixed(0).padStart(4)} MiB  (${wall.toFixed(1)} s${rate})`)
  if (!(rssMiB < LIMIT_MIB)) failures.push(`${name}: peak RSS ${rssMiB.toFixed(0)} MiB, the bound is ${LIMIT_MIB} MiB`)
  return r.stdout
}

/** Backup, verify and restore of `data` with the CLI, each one's peak RSS measured; the restored dir. */
async function roundTrip(name, data, bytes) {
  const repo = join(work, `repo-${name}`)
  const target = join(work, `restored-${name}`)
  const {identityFile, recipient} = await generateKeyFile(join(work, `key-${name}`))
  const backup = ['backup', '--path', repo, '--data-dir', data, '--recipient', recipient, '--service', 'none', '--json']
  const {id} = JSON.parse(measured(`${name} backup`, backup, bytes))
  measured(`${name} verify`, ['verify', id, '--path', repo, '--identity', identityFile, '--json'], bytes)
  const restore = ['restore', id, '--path', repo, '--data-dir', target, '--identity', identityFile, '--service', 'none']
  measured(`${name} restore`, [...restore, '--json'], bytes)
  rmSync(repo, {force: true, recursive: true})
  return target
}

try {
  const data = join(work, 'data')
  mkdirSync(data)
  const fd = openSync(join(data, 'zeros.bin'), 'w')
  writeSync(fd, MIDDLE, 0, MIDDLE.length, SPARSE / 2)
  ftruncateSync(fd, SPARSE)
  closeSync(fd)

  console.log(`5 GiB of zeros (sparse), bound ${LIMIT_MIB} MiB peak RSS per command:`)
  const target = await roundTrip('sparse', data, SPARSE)
  const info = statSync(join(target, 'zeros.bin'))
  const middle = Buffer.alloc(MIDDLE.length)
  const rfd = openSync(join(target, 'zeros.bin'), 'r')
  readSync(rfd, middle, 0, middle.length, SPARSE / 2)
  closeSync(rfd)
  if (info.size !== SPARSE || !middle.equals(MIDDLE)) failures.push('restore: zeros.bin did not come back as backed up')
  rmSync(target, {force: true, recursive: true})

  if (size > 0) {
    const generator = resolve(root, '..', 'shared', 'bench', 'make-mo-data.mjs')
    const moData = join(work, 'mo-data')
    console.log(`making ${sizeArg} of MO-like data with ${generator}`)
    const g = spawnSync(process.execPath, [generator, 'create', moData, '--size', sizeArg], {stdio: 'inherit'})
    if (g.status !== 0) throw new Error('data generator failed')
    const bytes = duBytes(moData)
    console.log(`${(bytes / GiB).toFixed(1)} GiB of MO-like data, bound ${LIMIT_MIB} MiB peak RSS per command:`)
    const restored = await roundTrip('mo-data', moData, bytes)
    const diff = spawnSync('diff', ['-r', '-q', '--exclude=shared-cache', '--exclude=tmp', moData, restored], {
      encoding: 'utf8',
    })
    if (diff.status !== 0) failures.push(`restore: the MO-like data came back different: ${diff.stdout.slice(0, 500)}`)
  }
} finally {
  rmSync(work, {force: true, recursive: true})
}

if (failures.length > 0) {
  for (const f of failures) console.error(`bench: ${f}`)
  process.exit(1)
}
