#!/usr/bin/env node
// npm run bench (after the others), alone: npm run bench:memory. The memory goal: backup, verify
// and restore of a GiB of zeros each stay under 256 MiB peak RSS.
//
// Makes a sparse 1 GiB file with 13 bytes of data in the middle (the archive is a zstd bomb of
// ~30 KiB), then runs the real CLI (bin/run.js → dist/: `npm run build` first) for backup, verify
// and restore with bench/rss-probe.mjs loaded by --import, which writes the process's peak RSS at
// exit. Prints the peak RSS of each and fails (exit 1) when one reaches the bound, or when a
// command fails or the restored file is not the one backed up. The sparse-file round trip itself
// is tested (small) in test/integration/archive-limits.test.ts.
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

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const run = join(root, 'bin', 'run.js')
const probe = pathToFileURL(join(root, 'bench', 'rss-probe.mjs')).href
const {generateKeyFile} = await import(pathToFileURL(join(root, 'dist', 'lib', 'keys.js')).href)

const GiB = 1024 * 1024 * 1024
const LIMIT_MIB = 256
const MIDDLE = Buffer.from('in the middle')

const work = mkdtempSync(join(tmpdir(), 'moctl-br-bench-memory-'))
const failures = []

/** Runs `br …args` with the probe loaded; its peak RSS in MiB, wall seconds and stdout. */
function measured(name, args) {
  const rssFile = join(work, `${name}.rss`)
  // The bench must not read the developer's own settings or keys.
  const env = {...process.env, MOCTL_TEST_RSS_FILE: rssFile, XDG_CONFIG_HOME: join(work, 'config')}
  for (const key of Object.keys(env)) if (key.startsWith('MOCTL_BR_')) delete env[key]
  const started = performance.now()
  const r = spawnSync(process.execPath, [`--import=${probe}`, run, 'br', ...args], {encoding: 'utf8', env})
  const wall = (performance.now() - started) / 1000
  if (r.status !== 0) throw new Error(`bench: br ${name} failed (exit ${r.status}): ${r.stderr}`)
  const rssMiB = Number(readFileSync(rssFile, 'utf8')) / 1024
  console.log(`${name.padEnd(8)} peak RSS ${rssMiB.toFixed(0).padStart(4)} MiB  (${wall.toFixed(1)} s)`)
  if (!(rssMiB < LIMIT_MIB)) failures.push(`${name}: peak RSS ${rssMiB.toFixed(0)} MiB, the bound is ${LIMIT_MIB} MiB`)
  return r.stdout
}

try {
  const data = join(work, 'data')
  const repo = join(work, 'repo')
  const target = join(work, 'restored')
  mkdirSync(data)
  const fd = openSync(join(data, 'zeros.bin'), 'w')
  writeSync(fd, MIDDLE, 0, MIDDLE.length, GiB / 2)
  ftruncateSync(fd, GiB)
  closeSync(fd)
  const {identityFile, recipient} = await generateKeyFile(join(work, 'key'))

  console.log(`1 GiB of zeros (sparse), bound ${LIMIT_MIB} MiB peak RSS per command:`)
  const out = measured('backup', [
    'backup',
    '--path',
    repo,
    '--data-dir',
    data,
    '--recipient',
    recipient,
    '--service',
    'none',
    '--json',
  ])
  const {id} = JSON.parse(out)
  measured('verify', ['verify', id, '--path', repo, '--identity', identityFile, '--json'])
  measured('restore', [
    'restore',
    id,
    '--path',
    repo,
    '--data-dir',
    target,
    '--identity',
    identityFile,
    '--service',
    'none',
    '--json',
  ])

  const info = statSync(join(target, 'zeros.bin'))
  const middle = Buffer.alloc(MIDDLE.length)
  const rfd = openSync(join(target, 'zeros.bin'), 'r')
  readSync(rfd, middle, 0, middle.length, GiB / 2)
  closeSync(rfd)
  if (info.size !== GiB || !middle.equals(MIDDLE)) failures.push('restore: zeros.bin did not come back as backed up')
} finally {
  rmSync(work, {force: true, recursive: true})
}

if (failures.length > 0) {
  for (const f of failures) console.error(`bench: ${f}`)
  process.exit(1)
}
