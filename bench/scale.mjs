#!/usr/bin/env node
// npm run bench:scale (and the end of npm run bench): verify is linear in the number of files.
//
// Builds two repositories in process, as the packer writes them (data/ entries in path order, the
// manifest last, zstd level 3), of one-byte files in directories of 1000: 20k and 200k files, so
// the per-file cost is all there is to measure. Times verify (readChain, from dist/: run
// `npm run build` first) of each, and `zstd -d | tar -xO` on the same archives as the baseline in
// the same run. Fails (exit 1) when:
// - the 200k/20k time ratio is 15 or more: linear work gives 10, a loaded 2-core machine, garbage
//   collection of a 10x larger heap and the fixed start-up costs move it by a few units; anything
//   quadratic gives 100 (before, readChain copied a growing list once per file: 100k files took
//   72-93 s);
// - the event loop is blocked 500 ms or more at once during the 200k verify (the goal is ~100 ms;
//   before it was 4.8 s), or Ctrl-C (an aborted signal, as the commands do on SIGINT) landing at
//   20% or 50% of it takes a second or more to act.
// The unit test test/unit/lib/restore/many-files.test.ts checks the same chain's behaviour at 5k
// files (verify, restore, abort), without timing.
import {spawnSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {monitorEventLoopDelay, performance} from 'node:perf_hooks'
import {Writable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {fileURLToPath, pathToFileURL} from 'node:url'
import tar from 'tar-stream'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const dist = (path) => import(pathToFileURL(join(root, 'dist', 'lib', path)).href)
const {createCompressor} = await dist('archive/compress.js')
const {encodeManifest} = await dist('archive/manifest.js')
const {openRepository} = await dist('repo/repository.js')
const {readChain} = await dist('restore/chain.js')

const RATIO_LIMIT = 15
const BLOCK_LIMIT_MS = 500
const INTERRUPT_LIMIT_MS = 1000

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex')
const work = mkdtempSync(join(tmpdir(), 'moctl-br-bench-scale-'))
const failures = []

/** A full backup of `files` one-byte files, stored in the repository; its record and manifest. */
async function store(repo, id, files) {
  const entries = []
  const dirs = Math.ceil(files / 1000)
  const body = Buffer.from('x')
  const hash = sha256(body)
  for (let d = 0; d < dirs; d++) {
    const dir = `d${String(d).padStart(4, '0')}`
    entries.push({mode: 0o755, mtimeMs: 1_700_000_000_000, path: dir, type: 'dir'})
    for (let f = 0; f < 1000 && d * 1000 + f < files; f++) {
      const path = `${dir}/f${String(f).padStart(4, '0')}`
      entries.push({in: id, mode: 0o644, mtimeMs: 1_700_000_000_000, path, sha256: hash, size: 1, type: 'file'})
    }
  }

  const createdAt = new Date().toISOString()
  const manifest = {backupId: id, chain: [id], createdAt, deleted: [], entries, format: 1, type: 'full'}
  const pack = tar.pack()
  for (const e of entries) {
    if (e.type === 'dir') pack.entry({mode: e.mode, name: `data/${e.path}`, type: 'directory'})
    else pack.entry({mode: 0o644, name: `data/${e.path}`, size: 1, type: 'file'}, body)
  }

  const encoded = encodeManifest(manifest)
  pack.entry({mode: 0o600, name: 'MANIFEST.json', size: encoded.length, type: 'file'}, encoded)
  pack.finalize()
  const chunks = []
  const sink = new Writable({
    write(chunk, _encoding, callback) {
      chunks.push(chunk)
      callback()
    },
  })
  await pipeline(pack, createCompressor(3), sink)
  const archive = Buffer.concat(chunks)
  await repo.writeObject(id, 'data.tar.zst', archive)
  await repo.writeObject(id, 'manifest.json', encoded)
  const record = {
    archive: {compression: 'zstd', file: 'data.tar.zst', level: 3, sha256: sha256(archive), size: archive.length},
    backupTs: createdAt,
    base: null,
    chain: [id],
    completedAt: createdAt,
    counts: {dirs, files, symlinks: 0},
    createdAt,
    durationMs: 0,
    encryption: {passphrase: false, recipients: [], type: 'none'},
    format: 1,
    id,
    manifest: {file: 'manifest.json', plainSha256: sha256(encoded), sha256: sha256(encoded), size: encoded.length},
    mode: 'cold',
    sizes: {archived: files, total: files},
    source: {dataDir: '/nowhere', host: 'bench', serverVersion: null},
    tool: {name: 'bench', version: '0'},
    type: 'full',
  }
  return {archivePath: join(repo.path, 'backups', id, 'data.tar.zst'), manifest, record}
}

/** Seconds readChain takes to verify the backup. */
async function verify(repo, backup, signal) {
  const started = performance.now()
  const result = await readChain({
    finalManifest: backup.manifest,
    keys: {identities: [], passphrases: []},
    members: [backup.record],
    repo,
    signal,
  })
  if (result.files !== backup.record.counts.files)
    throw new Error(`verify counted ${result.files} files, not ${backup.record.counts.files}`)
  return (performance.now() - started) / 1000
}

/** Seconds `zstd -d | tar -xO` takes to read the same archive: the baseline, in the same run. */
function baseline(archivePath) {
  const started = performance.now()
  const r = spawnSync('sh', ['-c', `zstd -dcq '${archivePath}' | tar -xOf - > /dev/null`], {stdio: 'inherit'})
  if (r.status !== 0) throw new Error(`zstd -d | tar -xO failed on ${archivePath}`)
  return (performance.now() - started) / 1000
}

try {
  const hasZstd = spawnSync('sh', ['-c', 'command -v zstd']).status === 0
  const repo = await openRepository(join(work, 'repo'), {create: true})
  let started = performance.now()
  const small = await store(repo, 'small', 20_000)
  const large = await store(repo, 'large', 200_000)
  console.log(`built the 20k and 200k repositories in ${((performance.now() - started) / 1000).toFixed(1)} s`)

  // Warm up the code paths (JIT) on the small one first.
  await verify(repo, small)
  const verifySmall = await verify(repo, small)
  const lag = monitorEventLoopDelay({resolution: 10})
  lag.enable()
  const verifyLarge = await verify(repo, large)
  lag.disable()
  const blockedMs = lag.max / 1e6
  const ratio = verifyLarge / verifySmall

  const interrupts = []
  for (const at of [0.2, 0.5]) {
    const abort = new AbortController()
    started = performance.now()
    setTimeout(() => abort.abort(new Error('SIGINT')), verifyLarge * 1000 * at)
    const error = await verify(repo, large, abort.signal).then(
      () => new Error('verify finished before the abort'),
      (error_) => error_,
    )
    const lateMs = performance.now() - (verifyLarge * 1000 * at + started)
    interrupts.push({at, code: error?.code, lateMs})
  }

  const base = hasZstd ? {large: baseline(large.archivePath), small: baseline(small.archivePath)} : undefined

  console.log(`\nnode ${process.version}; peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`)
  console.log('| run | 20k files s | 200k files s | ratio 200k/20k |')
  console.log('|---|---|---|---|')
  console.log(`| verify (readChain) | ${verifySmall.toFixed(2)} | ${verifyLarge.toFixed(2)} | ${ratio.toFixed(1)} |`)
  if (base)
    console.log(
      `| zstd -d \\| tar -xO | ${base.small.toFixed(2)} | ${base.large.toFixed(2)} | ${(base.large / base.small).toFixed(1)} |`,
    )
  else console.log('(no zstd CLI: the baseline row is left out; apt-get install -y zstd)')
  if (base)
    console.log(
      `\nverify/baseline time ratio: 20k ${(verifySmall / base.small).toFixed(1)}, 200k ${(verifyLarge / base.large).toFixed(1)}`,
    )
  console.log(`event loop: longest block ${blockedMs.toFixed(0)} ms during the 200k verify (limit ${BLOCK_LIMIT_MS})`)
  for (const i of interrupts)
    console.log(
      `interrupted at ${i.at * 100}%: ${i.code} after ${i.lateMs.toFixed(0)} ms (limit ${INTERRUPT_LIMIT_MS})`,
    )

  if (ratio >= RATIO_LIMIT) failures.push(`verify ratio 200k/20k ${ratio.toFixed(1)} is ${RATIO_LIMIT} or more`)
  if (blockedMs >= BLOCK_LIMIT_MS) failures.push(`the event loop was blocked ${blockedMs.toFixed(0)} ms at once`)
  for (const i of interrupts) {
    if (i.code !== 'interrupted') failures.push(`the abort at ${i.at * 100}% ended in ${i.code ?? 'no BrError'}`)
    else if (i.lateMs >= INTERRUPT_LIMIT_MS)
      failures.push(`the abort at ${i.at * 100}% acted after ${i.lateMs.toFixed(0)} ms`)
  }
} finally {
  rmSync(work, {force: true, recursive: true})
}

if (failures.length > 0) {
  for (const f of failures) console.error(`bench:scale: FAILED: ${f}`)
  process.exit(1)
}

console.log('bench:scale: ok (linear, responsive)')
