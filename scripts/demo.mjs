#!/usr/bin/env node
// The main job of moctl br, end to end, on a throwaway MO-like data dir: make a writer and a reader key, take a signed,
// encrypted full backup, list it, verify it, restore it into a new directory and compare every
// file. Everything happens under one temp dir, removed at the end (--keep keeps it).
import {spawnSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {mkdtempSync, readdirSync, readFileSync, rmSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {createMoData} from './make-mo-data.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const keep = process.argv.includes('--keep')
const size = process.argv.find((a) => a.startsWith('--size='))?.slice(7) ?? '64MiB'
const work = mkdtempSync(join(tmpdir(), 'moctl-br-demo-'))
const dataDir = join(work, 'mo-data')
const repo = join(work, 'repo')
const writerKey = join(work, 'host', 'writer.key')
const readerKey = join(work, 'vault', 'reader.key')

function moctl(...args) {
  console.log(`\n$ moctl ${args.join(' ')}`)
  const r = spawnSync(process.execPath, [join(root, 'bin', 'run.js'), ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  process.stdout.write(r.stdout)
  if (r.status !== 0) {
    console.error(`moctl exited ${r.status}`)
    process.exit(r.status ?? 1)
  }

  return r.stdout.trim()
}

function hashes(dir, rel = '', out = {}) {
  for (const name of readdirSync(join(dir, rel)).sort()) {
    const path = rel ? `${rel}/${name}` : name
    if (path === 'shared-cache' || path === 'tmp') continue
    const info = statSync(join(dir, path))
    if (info.isDirectory()) hashes(dir, path, out)
    else
      out[path] = createHash('sha256')
        .update(readFileSync(join(dir, path)))
        .digest('hex')
  }

  return out
}

try {
  console.log(`demo in ${work}: making a ${size} MO-like data dir`)
  await createMoData(dataDir, {seed: 1, size})
  moctl('br', 'key', 'generate', '--writer-key', writerKey, '--reader-key', readerKey)
  const id = moctl('br', 'backup', '--path', repo, '--data-dir', dataDir, '--writer-key', writerKey)
  moctl('br', 'list', '--path', repo)
  moctl('br', 'verify', id, '--path', repo, '--identity', readerKey)
  moctl('br', 'restore', id, '--path', repo, '--data-dir', join(work, 'restored', 'mo-data'), '--identity', readerKey)
  const a = hashes(dataDir)
  const b = hashes(join(work, 'restored', 'mo-data'))
  const same = JSON.stringify(a) === JSON.stringify(b)
  console.log(
    `\nrestored tree ${same ? 'matches' : 'DIFFERS FROM'} the original: ${Object.keys(b).length} files compared by SHA-256`,
  )
  if (!same) process.exitCode = 1
} finally {
  if (keep) console.log(`kept ${work}`)
  else rmSync(work, {force: true, recursive: true})
}
