/**
 * A chain whose WAL grew, in process (backupFlow, verifyFlow, restoreFlow on real dirs): verify
 * and restore give back the assembled file; and a chain forged by whoever can write an unsigned,
 * unencrypted repository (the incremental's manifest, its archive's copy of it and its record
 * rewritten to agree with one another) whose assembled file does not hash to the SHA-256 its
 * manifest gives, though every part does, is refused by verify (hashing the parts as they pass)
 * and by restore (hashing the file it assembled), exit 3, with nothing left beside the target.
 */
import {createHash} from 'node:crypto'
import {appendFile, mkdir, readdir, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {Readable} from 'node:stream'
import tar from 'tar-stream'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {PackProgress} from '../../../../src/lib/archive/types.js'
import type {BackupRecord} from '../../../../src/lib/repo/types.js'

import {createCompressor, createDecompressor} from '../../../../src/lib/archive/compress.js'
import {decodeManifest, encodeManifest} from '../../../../src/lib/archive/manifest.js'
import {BrError} from '../../../../src/lib/errors.js'
import {recordBinding} from '../../../../src/lib/repo/authenticity.js'
import {checkBackup} from '../../../../src/lib/repo/catalog.js'
import {ManifestCache} from '../../../../src/lib/repo/manifest-cache.js'
import {readChain} from '../../../../src/lib/restore/chain.js'
import {optionsFor, takeBackup} from '../../../helpers/backup.js'
import {tempDir, type TempDir} from '../../../helpers/cli.js'
import {restoreInProcess, verifyInProcess} from '../../../helpers/read-flows.js'
import {mixedBytes, through} from '../archive/fixture.js'

const WAL = 'logservice-data/wal-000001.log'
const trust = {allowUnencrypted: true, allowUnsigned: true, signers: []}
const decrypt = {identities: [], passphrases: []}
const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex')

let tmp: TempDir
let dataDir: string
let repoPath: string
let ids: string[]

beforeAll(async () => {
  tmp = await tempDir('moctl-br-assembled-')
  dataDir = join(tmp.path, 'mo-data')
  repoPath = join(tmp.path, 'repo')
  await mkdir(join(dataDir, 'logservice-data'), {recursive: true})
  await writeFile(join(dataDir, WAL), mixedBytes(200_000))
  const cache = new ManifestCache(join(tmp.path, 'cache'))
  const full = await takeBackup(optionsFor(dataDir, repoPath, {cache}))
  await appendFile(join(dataDir, WAL), mixedBytes(30_000))
  const inc = await takeBackup(optionsFor(dataDir, repoPath, {cache, type: 'incremental'}))
  ids = [full.id, inc.id]
})

afterAll(async () => {
  await tmp?.cleanup()
})

const reader = {decrypt, trust}
const verify = (repo: string, id: string) => verifyInProcess(repo, id, reader)
const restore = (repo: string, id: string, target: string) => restoreInProcess(repo, id, target, reader)

async function refusal(run: Promise<unknown>): Promise<BrError> {
  const error = await run.then(
    () => {},
    (error_: unknown) => error_,
  )
  expect(error).toBeInstanceOf(BrError)
  expect((error as BrError).code).toBe('integrity')
  return error as BrError
}

/** The incremental rewritten with its WAL's whole SHA-256 replaced, every copy and checksum made to agree. */
async function forge(repo: string, id: string, change: {walSha256: string}): Promise<void> {
  const dir = join(repo, 'backups', id)
  const record = JSON.parse(await readFile(join(dir, 'backup.json'), 'utf8')) as BackupRecord
  const manifest = decodeManifest(await readFile(join(dir, record.manifest.file)))
  const wal = manifest.entries.find((e) => e.path === WAL)!
  expect(wal).toMatchObject({parts: expect.any(Array)})
  if (wal.type === 'file') wal.sha256 = change.walSha256
  // The archive's own copy of the manifest (it has no record binding), in a new tar.
  const tarBytes = await through(await readFile(join(dir, record.archive.file)), createDecompressor())
  const extract = tar.extract()
  const pack = tar.pack()
  const packed = (async () => {
    for await (const entry of Readable.from([tarBytes]).pipe(extract)) {
      const chunks: Buffer[] = []
      for await (const chunk of entry) chunks.push(chunk as Buffer)
      const body =
        entry.header.name === 'MANIFEST.json' ? encodeManifest({...manifest, record: undefined}) : Buffer.concat(chunks)
      await new Promise<void>((resolve, reject) => {
        pack.entry({...entry.header, size: body.length}, body, (error) => (error ? reject(error) : resolve()))
      })
    }

    pack.finalize()
  })()
  const chunks: Buffer[] = []
  for await (const chunk of pack) chunks.push(chunk as Buffer)
  await packed
  const archive = await through(Buffer.concat(chunks), createCompressor(3))
  await writeFile(join(dir, record.archive.file), archive)
  record.archive = {...record.archive, sha256: sha(archive), size: archive.length}
  const fields: Partial<BackupRecord> = {...record}
  delete fields.manifest
  delete fields.signature
  manifest.record = recordBinding(fields as Omit<BackupRecord, 'manifest' | 'signature'>)
  const bytes = encodeManifest(manifest)
  await writeFile(join(dir, record.manifest.file), bytes)
  record.manifest = {...record.manifest, plainSha256: sha(bytes), sha256: sha(bytes), size: bytes.length}
  await writeFile(join(dir, 'backup.json'), `${JSON.stringify(record, null, 2)}\n`)
}

/** The full's manifest rewritten (its WAL's SHA-256), its record's checksums of it made to agree; the archive untouched. */
async function forgeManifestOnly(repo: string, id: string): Promise<void> {
  const dir = join(repo, 'backups', id)
  const record = JSON.parse(await readFile(join(dir, 'backup.json'), 'utf8')) as BackupRecord
  const manifest = decodeManifest(await readFile(join(dir, record.manifest.file)))
  const wal = manifest.entries.find((e) => e.path === WAL)!
  if (wal.type === 'file') wal.sha256 = 'e'.repeat(64)
  const bytes = encodeManifest(manifest)
  await writeFile(join(dir, record.manifest.file), bytes)
  record.manifest = {...record.manifest, plainSha256: sha(bytes), sha256: sha(bytes), size: bytes.length}
  await writeFile(join(dir, 'backup.json'), `${JSON.stringify(record, null, 2)}\n`)
}

describe('a file assembled from the parts of a chain', () => {
  it('writes manifest format 2 for the incremental only; both records stay format 2', async () => {
    const dirs = ids.map((id) => join(repoPath, 'backups', id))
    const records = await Promise.all(dirs.map(async (d) => JSON.parse(await readFile(join(d, 'backup.json'), 'utf8'))))
    expect(records.map((r) => r.format)).toEqual([2, 2])
    const manifests = await Promise.all(dirs.map(async (d) => decodeManifest(await readFile(join(d, 'manifest.json')))))
    expect(manifests.map((m) => m.format)).toEqual([1, 2])
  })

  it('verifies, and restores byte for byte', async () => {
    await verify(repoPath, ids[1])
    const target = join(tmp.path, 'restored', 'mo-data')
    await restore(repoPath, ids[1], target)
    expect((await readFile(join(target, WAL))).equals(await readFile(join(dataDir, WAL)))).toBe(true)
  })

  it('counts progress by what it reads: it ends at its total, never past it (restore and verify)', async () => {
    const {manifest, members, repo} = await checkBackup(repoPath, ids[1], decrypt, {trust})
    const parent = join(tmp.path, 'progress')
    await mkdir(parent)
    for (const dest of [join(parent, 'mo-data'), undefined]) {
      const seen: PackProgress[] = []
      await readChain({dest, finalManifest: manifest!, keys: decrypt, members, onProgress: (p) => seen.push(p), repo})
      for (const p of seen) {
        expect(p.bytesDone).toBeLessThanOrEqual(p.bytesTotal)
        expect(p.filesDone).toBeLessThanOrEqual(p.filesTotal)
      }

      // Both archives hold a piece of the WAL: the full its first 200,000 bytes, the incremental 30,000 more.
      const last = seen.at(-1)!
      expect(last).toEqual({bytesDone: last.bytesTotal, bytesTotal: 230_000, filesDone: 2, filesTotal: 2})
    }
  })

  it('from a chain that does not agree with itself: refused before any archive is read', async () => {
    const forged = join(tmp.path, 'disagree')
    const {cp} = await import('node:fs/promises')
    await cp(repoPath, forged, {recursive: true})
    await forgeManifestOnly(forged, ids[0])
    // The target's archive is damaged too: read first, it would be what fails.
    const archive = join(forged, 'backups', ids[1], 'data.tar.zst')
    const bytes = await readFile(archive)
    bytes[Math.floor(bytes.length / 2)] ^= 0xff
    await writeFile(archive, bytes)
    const message = new RegExp(`backup ${ids[1]}: part 1 of ${WAL} is not in backup ${ids[0]} as its manifest says`)
    expect((await refusal(verify(forged, ids[1]))).message).toMatch(message)
    const parent = join(tmp.path, 'disagree-restore')
    await mkdir(parent)
    expect((await refusal(restore(forged, ids[1], join(parent, 'mo-data')))).message).toMatch(message)
    expect(await readdir(parent)).toEqual([])
  })

  it('whose parts do not make the file its manifest hashes: refused by verify and restore', async () => {
    const forged = join(tmp.path, 'forged')
    await mkdir(forged)
    const {cp} = await import('node:fs/promises')
    await cp(repoPath, forged, {recursive: true})
    await forge(forged, ids[1], {walSha256: 'f'.repeat(64)})
    const message = new RegExp(`backup ${ids[1]}: ${WAL}, assembled from its 2 parts, does not match its SHA-256`)
    expect((await refusal(verify(forged, ids[1]))).message).toMatch(message)
    const parent = join(tmp.path, 'forged-restore')
    await mkdir(parent)
    expect((await refusal(restore(forged, ids[1], join(parent, 'mo-data')))).message).toMatch(message)
    expect(await readdir(parent)).toEqual([])
  })
})
