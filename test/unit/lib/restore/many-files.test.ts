/**
 * readChain on a backup of many small files, built in process as the packer writes them (data/
 * entries in path order, the manifest last, zstd), of one-byte files in directories of 1000: 5000
 * files. Verify counts and checks them all, restore writes them all, and an aborted signal (the
 * commands abort it on SIGINT) stops either with the interrupted BrError, whether it was aborted
 * before the start or in the middle of the archive.
 *
 * How long this takes at 20k and 200k files (linear: a ratio of about 10) and how soon Ctrl-C
 * acts are measured by the benchmark, bench/scale.mjs (`npm run bench:scale`), not here.
 */
import {readdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'
import tar from 'tar-stream'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {FileEntry, Manifest, ManifestEntry, PackProgress} from '../../../../src/lib/archive/types.js'
import type {BackupRecord} from '../../../../src/lib/repo/types.js'

import {createCompressor} from '../../../../src/lib/archive/compress.js'
import {encodeManifest} from '../../../../src/lib/archive/manifest.js'
import {BrError, ExitCode} from '../../../../src/lib/errors.js'
import {openRepository, type Repository} from '../../../../src/lib/repo/repository.js'
import {readChain} from '../../../../src/lib/restore/chain.js'
import {sha256, tempDir, through} from '../archive/fixture.js'

const FILES = 5000

let work: Awaited<ReturnType<typeof tempDir>>
let repo: Repository
let backup: {manifest: Manifest; record: BackupRecord}

beforeAll(async () => {
  work = await tempDir('moctl-br-many-files-')
  repo = await openRepository(join(work.dir, 'repo'), {create: true})
  backup = await store('many', FILES)
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

/** readChain over the one backup: verify, or restore into `dest`. */
function read(options: {dest?: string; onProgress?: (p: PackProgress) => void; signal?: AbortSignal} = {}) {
  return readChain({
    ...options,
    finalManifest: backup.manifest,
    keys: {identities: [], passphrases: []},
    members: [backup.record],
    repo,
  })
}

describe('readChain on a backup of 5000 one-byte files', () => {
  it('verifies every file, and its progress ends at all of them', async () => {
    const progress: PackProgress[] = []
    expect(await read({onProgress: (p) => progress.push(p)})).toEqual({bytes: FILES, files: FILES})
    expect(progress.at(-1)).toMatchObject({bytesDone: FILES, filesDone: FILES})
  })

  it('restores every file with its bytes', async () => {
    const dest = join(work.dir, 'restored')
    expect(await read({dest})).toEqual({bytes: FILES, files: FILES})
    const dirs = await readdir(dest)
    expect(dirs).toEqual(['d0000', 'd0001', 'd0002', 'd0003', 'd0004'])
    let files = 0
    for (const dir of dirs) files += (await readdir(join(dest, dir))).length
    expect(files).toBe(FILES)
    expect(await readFile(join(dest, 'd0004', 'f0999'), 'utf8')).toBe('x')
  })

  it('stops with the interrupted BrError when the signal is aborted before it starts', async () => {
    const abort = new AbortController()
    abort.abort(new Error('SIGINT'))
    const error = await read({signal: abort.signal}).catch((error_: unknown) => error_)
    expect(error).toBeInstanceOf(BrError)
    expect((error as BrError).code).toBe('interrupted')
    expect((error as BrError).exitCode).toBe(ExitCode.interrupted)
  })

  for (const mode of ['verify', 'restore'] as const) {
    it(`${mode}: stops with the interrupted BrError when the signal is aborted after the first file`, async () => {
      const abort = new AbortController()
      let reported: PackProgress | undefined
      const error = await read({
        dest: mode === 'restore' ? join(work.dir, 'interrupted') : undefined,
        // The first progress report comes with the first file's bytes: the abort lands mid-archive.
        onProgress(p) {
          if (abort.signal.aborted) return
          reported = {...p}
          abort.abort(new Error('SIGINT'))
        },
        signal: abort.signal,
      }).catch((error_: unknown) => error_)
      expect(reported?.filesDone).toBeLessThan(FILES)
      expect(error).toBeInstanceOf(BrError)
      expect((error as BrError).code).toBe('interrupted')
    })
  }
})
