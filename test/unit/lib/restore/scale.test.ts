/**
 * Verify and restore are linear in the number of files: reading a chain of 200k files takes about
 * ten times as long as one of 20k. Before, readChain copied a growing list once per file (and
 * other per-file costs grew with the tree), which made 100k files take 72-93 s.
 *
 * The archives are built in process as the packer writes them (data/ entries in path order, the
 * manifest last, zstd), of one-byte files in directories of 1000, so the per-file cost is all
 * there is to measure. The threshold is 15: linear work gives 10, and a loaded 2-core machine,
 * garbage collection of a 10x larger heap and the fixed start-up costs move it by a few tenths
 * to a few units; anything quadratic gives 100 (in practice far beyond the test's timeout).
 * Restore shares readChain and the per-entry reader with verify; `timed(backup, dest)` restores
 * (measured here: 20k 3.8 s, 200k 29.7 s, ratio 7.9), left out of the suite for its minute of
 * file creation.
 */
import {join} from 'node:path'
import {monitorEventLoopDelay, performance} from 'node:perf_hooks'
import tar from 'tar-stream'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {FileEntry, Manifest, ManifestEntry} from '../../../../src/lib/archive/types.js'
import type {BackupRecord} from '../../../../src/lib/repo/types.js'

import {createCompressor} from '../../../../src/lib/archive/compress.js'
import {encodeManifest} from '../../../../src/lib/archive/manifest.js'
import {BrError} from '../../../../src/lib/errors.js'
import {openRepository, type Repository} from '../../../../src/lib/repo/repository.js'
import {readChain} from '../../../../src/lib/restore/chain.js'
import {sha256, tempDir, through} from '../archive/fixture.js'

let work: Awaited<ReturnType<typeof tempDir>>
let repo: Repository

beforeAll(async () => {
  work = await tempDir('moctl-br-scale-')
  repo = await openRepository(join(work.dir, 'repo'), {create: true})
})

afterAll(async () => {
  await work.cleanup()
})

/** A full backup of `files` one-byte files, stored in the repository; its record and manifest. */
async function store(id: string, files: number): Promise<{manifest: Manifest; record: BackupRecord}> {
  const entries: ManifestEntry[] = []
  const dirs = Math.ceil(files / 1000)
  const body = Buffer.from('x')
  const hash = sha256(body)
  for (let d = 0; d < dirs; d++) {
    const dir = `d${String(d).padStart(4, '0')}`
    entries.push({mode: 0o755, mtimeMs: 1_700_000_000_000, path: dir, type: 'dir'})
    for (let f = 0; f < 1000 && d * 1000 + f < files; f++) {
      const file: FileEntry = {
        in: id,
        mode: 0o644,
        mtimeMs: 1_700_000_000_000,
        path: `${dir}/f${String(f).padStart(4, '0')}`,
        sha256: hash,
        size: 1,
        type: 'file',
      }
      entries.push(file)
    }
  }

  const manifest: Manifest = {
    backupId: id,
    chain: [id],
    createdAt: new Date().toISOString(),
    deleted: [],
    entries,
    format: 1,
    type: 'full',
  }
  const pack = tar.pack()
  const chunks: Buffer[] = []
  pack.on('data', (chunk) => chunks.push(chunk as Buffer))
  for (const e of entries) {
    if (e.type === 'dir') pack.entry({mode: e.mode, name: `data/${e.path}`, type: 'directory'})
    else pack.entry({mode: 0o644, name: `data/${e.path}`, size: 1, type: 'file'}, body)
  }

  const encoded = encodeManifest(manifest)
  pack.entry({mode: 0o600, name: 'MANIFEST.json', size: encoded.length, type: 'file'}, encoded)
  pack.finalize()
  await new Promise<void>((resolve) => {
    pack.on('end', () => resolve())
  })
  const archive = await through(Buffer.concat(chunks), createCompressor(3))
  await repo.writeObject(id, 'data.tar.zst', archive)
  await repo.writeObject(id, 'manifest.json', encoded)
  const record: BackupRecord = {
    archive: {compression: 'zstd', file: 'data.tar.zst', level: 3, sha256: sha256(archive), size: archive.length},
    backupTs: manifest.createdAt,
    base: null,
    chain: [id],
    completedAt: manifest.createdAt,
    counts: {dirs, files, symlinks: 0},
    createdAt: manifest.createdAt,
    durationMs: 0,
    encryption: {passphrase: false, recipients: [], type: 'none'},
    format: 1,
    id,
    manifest: {file: 'manifest.json', plainSha256: sha256(encoded), sha256: sha256(encoded), size: encoded.length},
    mode: 'cold',
    sizes: {archived: files, total: files},
    source: {dataDir: '/nowhere', host: 'test', serverVersion: null},
    tool: {name: 'test', version: '0'},
    type: 'full',
  }
  return {manifest, record}
}

/** Seconds readChain takes to verify (or restore, with `dest`) the backup. */
async function timed(
  backup: {manifest: Manifest; record: BackupRecord},
  dest?: string,
  signal?: AbortSignal,
): Promise<number> {
  const started = performance.now()
  const result = await readChain({
    dest,
    finalManifest: backup.manifest,
    keys: {identities: [], passphrases: []},
    members: [backup.record],
    repo,
    signal,
  })
  expect(result.files).toBe(backup.record.counts.files)
  return (performance.now() - started) / 1000
}

describe('verify and restore scale linearly in files', () => {
  it('20k against 200k files: verify', async () => {
    const small = await store('small', 20_000)
    const large = await store('large', 200_000)
    // Warm up the code paths (JIT) on the small one first.
    await timed(small)
    const verifySmall = await timed(small)
    const lag = monitorEventLoopDelay({resolution: 10})
    lag.enable()
    const verifyLarge = await timed(large)
    lag.disable()
    console.log(`event loop: longest block ${(lag.max / 1e6).toFixed(0)} ms during the 200k verify`)
    // The goal is ~100 ms (measured: 131 ms); 500 leaves room for a loaded machine, and before it was 4.8 s.
    expect(lag.max / 1e6).toBeLessThan(500)
    console.log(
      `verify: 20k ${verifySmall.toFixed(2)} s, 200k ${verifyLarge.toFixed(2)} s, ratio ${(verifyLarge / verifySmall).toFixed(1)}`,
    )
    expect(verifyLarge / verifySmall).toBeLessThan(15)

    // Ctrl-C (the commands abort this signal on SIGINT) acts within a second, wherever it lands.
    for (const at of [0.2, 0.5]) {
      const abort = new AbortController()
      const interruptStarted = performance.now()
      setTimeout(() => abort.abort(new Error('SIGINT')), verifyLarge * 1000 * at)
      const error = await timed(large, undefined, abort.signal).catch((error_: unknown) => error_)
      const acted = performance.now()
      expect((error as BrError).code).toBe('interrupted')
      const late = acted - (verifyLarge * 1000 * at + interruptStarted)
      console.log(`interrupted at ${at * 100}%: acted after ${late.toFixed(0)} ms`)
      expect(late).toBeLessThan(1000)
    }
  }, 170_000)
})
