/**
 * verify --quick reads only the records and each stored object's size and store checksum, on a
 * real S3-protocol server (s3rver on loopback, behind the recording proxy of test/helpers/s3.ts).
 *
 * s3rver keeps no checksums: the store's side is played by the proxy, which adds to its HEAD
 * replies the x-amz-checksum-sha256 that S3 keeps of what was PUT, computed by this test from the
 * bytes and the part layout (not by the backend). What is checked at the request level only: that
 * verify sends no GET of an archive or a manifest when the store's checksums match the record's.
 * A signed, encrypted chain: a full backup whose archive is a two-part upload (12 MiB of random
 * bytes, parts of 8 MiB), and an incremental whose archive is one PutObject.
 */
import {createHash, randomBytes} from 'node:crypto'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, beforeEach, describe, expect, it} from 'vitest'

import type {BackupRecord} from '../../../../src/lib/repo/types.js'

import {BrError} from '../../../../src/lib/errors.js'
import {localRepo, type RepoAddress} from '../../../../src/lib/repo/address.js'
import {FsBackend} from '../../../../src/lib/repo/fs.js'
import {openRepository} from '../../../../src/lib/repo/repository.js'
import {PART_PLAN} from '../../../../src/lib/repo/s3.js'
import {newVerifyContext, verifyFlow, verifyResult} from '../../../../src/lib/restore/verify.js'
import {loadDecryptOptions} from '../../../../src/lib/secrets.js'
import {runFlow} from '../../../../src/lib/steps.js'
import {optionsFor, signedWriter, takeBackup} from '../../../helpers/backup.js'
import {tempDir} from '../../../helpers/cli.js'
import {makeSmallDataDir} from '../../../helpers/fixtures.js'
import {type S3Server, startS3} from '../../../helpers/s3.js'

const PREFIX = 'quick/mo'
let tmp: {cleanup: () => Promise<void>; path: string}
let s3: S3Server
let bucket: RepoAddress
let dataDir: string
let full: BackupRecord
let inc: BackupRecord
let signers: string[]
/** The checksum S3 would keep of each stored object, computed here: by object path. */
const kept = new Map<string, string>()

const b64 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('base64')
const objectPath = (id: string, file: string) => `/${s3.bucket}/${PREFIX}/backups/${id}/${file}`

beforeAll(async () => {
  tmp = await tempDir('moctl-br-verify-quick-')
  s3 = await startS3({recorder: true})
  bucket = {location: s3.url(PREFIX), s3: s3.settings(PREFIX)}
  dataDir = join(tmp.path, 'mo-data')
  await makeSmallDataDir(dataDir)
  // Incompressible, and more than one 8 MiB part once compressed: a multipart upload.
  await writeFile(join(dataDir, 'shared', 'big-object'), randomBytes(12 * 1024 * 1024))
  const {readerKey, write} = await signedWriter(tmp.path)
  signers = (await loadDecryptOptions({env: {}, identityFiles: [readerKey]})).signers
  full = await takeBackup(optionsFor(dataDir, bucket, write))
  await writeFile(join(dataDir, 'shared', 'new-object'), 'new rows')
  inc = await takeBackup(optionsFor(dataDir, bucket, {...write, type: 'incremental'}))
}, 120_000)
afterAll(async () => {
  await s3?.stop()
  await tmp?.cleanup()
})
beforeEach(() => {
  s3.requests.length = 0
  s3.replyHeaders = undefined
})

async function quickVerify(repo: RepoAddress, id: string) {
  const lines: string[] = []
  const ctx = newVerifyContext({
    decrypt: {identities: [], passphrases: []},
    id,
    quick: true,
    repo,
    trust: {allowUnencrypted: false, allowUnsigned: false, signers},
  })
  await runFlow(verifyFlow(), ctx, {onEvent: (e) => e.type === 'output' && lines.push(e.line)})
  return {lines, result: verifyResult(ctx)}
}

/** The proxy answers HEADs as a store that keeps `checksums` (by object path) would. */
function storeKeeps(checksums: Map<string, string>) {
  s3.replyHeaders = (r, headers) => {
    const checksum = r.method === 'HEAD' ? checksums.get(r.path) : undefined
    if (checksum) headers['x-amz-checksum-sha256'] = checksum.replace(/^sha256:/, '')
  }
}

const objectGets = () =>
  s3.requests.filter((r) => r.method === 'GET' && !r.path.endsWith('/backup.json') && r.path.includes('/backups/'))

describe('the record keeps the store checksum', () => {
  it('of a multipart archive: the composite of its parts, as computed here from the 8 MiB part layout; of a single PUT: its SHA-256', async () => {
    const repo = await openRepository(bucket)
    const archive = await repo.readObject(full.id, full.archive.file, {maxBytes: full.archive.size})
    expect(archive.length).toBeGreaterThan(PART_PLAN.firstPartBytes)
    const parts = [archive.subarray(0, PART_PLAN.firstPartBytes), archive.subarray(PART_PLAN.firstPartBytes)]
    const composite = createHash('sha256')
      .update(Buffer.concat(parts.map((p) => createHash('sha256').update(p).digest())))
      .digest('base64')
    expect(full.archive.storeChecksum).toBe(`sha256:${composite}-2`)
    kept.set(objectPath(full.id, full.archive.file), `sha256:${composite}-2`)

    for (const [record, what] of [
      [full, 'manifest'],
      [inc, 'archive'],
      [inc, 'manifest'],
    ] as const) {
      const object = record[what]
      const bytes = await repo.readObject(record.id, object.file, {maxBytes: object.size})
      expect(object.storeChecksum).toBe(`sha256:${b64(bytes)}`)
      kept.set(objectPath(record.id, object.file), `sha256:${b64(bytes)}`)
    }

    // In backup.json, after size: the keys stay in order.
    const raw = JSON.parse((await repo.backend.load(`backups/${full.id}/backup.json`)).toString()) as BackupRecord
    expect(Object.keys(raw.archive)).toEqual(['compression', 'file', 'level', 'sha256', 'size', 'storeChecksum'])
    expect(Object.keys(raw.manifest)).toEqual(['file', 'plainSha256', 'sha256', 'size', 'storeChecksum'])
  })
})

describe('verify --quick on S3', () => {
  it("with the store reporting the record's checksums: HEADs only, not one GET of an archive or a manifest", async () => {
    expect(kept.size).toBe(4)
    storeKeeps(kept)
    const {lines, result} = await quickVerify(bucket, inc.id)
    expect(result.chain).toEqual([full.id, inc.id])
    expect(result.checkedBy).toEqual({[full.id]: 'store checksum', [inc.id]: 'store checksum'})
    expect(objectGets()).toEqual([])
    const heads = s3.requests.filter((r) => r.method === 'HEAD').map((r) => r.path)
    for (const path of kept.keys()) expect(heads).toContain(path)
    expect(lines.filter((l) => l.includes('store checksum') && l.includes('nothing read'))).toHaveLength(2)
  })

  it('with another checksum from the store (another part layout): that archive is downloaded and hashed, the rest is not read', async () => {
    const other = new Map(kept)
    const archivePath = objectPath(full.id, full.archive.file)
    other.set(archivePath, `sha256:${b64(Buffer.from('three parts'))}-3`)
    storeKeeps(other)
    const {lines, result} = await quickVerify(bucket, inc.id)
    expect(result.checkedBy).toEqual({[full.id]: 'hashed', [inc.id]: 'store checksum'})
    expect(objectGets().map((r) => r.path)).toEqual([archivePath])
    expect(lines.find((l) => l.startsWith(full.id) && l.includes('sha256'))).toContain('(hashed)')
  })

  it('with no checksum from the store (s3rver as it is): every object is hashed', async () => {
    const {result} = await quickVerify(bucket, inc.id)
    expect(result.checkedBy).toEqual({[full.id]: 'hashed', [inc.id]: 'hashed'})
    expect(objectGets()).toHaveLength(4)
  })

  it('an object of another size than its record says is an integrity failure (exit 3), whatever its checksum', async () => {
    storeKeeps(kept)
    const archivePath = objectPath(full.id, full.archive.file)
    const keep = s3.replyHeaders!
    s3.replyHeaders = (r, headers) => {
      keep(r, headers)
      if (r.method === 'HEAD' && r.path === archivePath) headers['content-length'] = String(full.archive.size + 1)
    }

    const error = await quickVerify(bucket, inc.id).catch((error_: unknown) => error_)
    expect(error).toBeInstanceOf(BrError)
    expect((error as BrError).exitCode).toBe(3)
    expect((error as BrError).message).toContain(`${full.archive.size + 1} bytes, its record says ${full.archive.size}`)
    expect(objectGets()).toEqual([])
  })

  it('the signature covers the store checksum: a record whose storeChecksum was changed is refused (exit 3); a malformed one too', async () => {
    const repo = await openRepository(bucket)
    const key = `backups/${full.id}/backup.json`
    const original = await repo.backend.load(key)
    const edited = JSON.parse(original.toString()) as BackupRecord
    try {
      edited.archive.storeChecksum = `sha256:${b64(Buffer.from('forged'))}-2`
      await repo.backend.save(key, Buffer.from(JSON.stringify(edited)))
      const forged = await quickVerify(bucket, full.id).catch((error_: unknown) => error_)
      expect((forged as BrError).exitCode).toBe(3)
      expect((forged as BrError).message).toContain('signature does not match')

      edited.archive.storeChecksum = 'md5:abc'
      await repo.backend.save(key, Buffer.from(JSON.stringify(edited)))
      const bad = await quickVerify(bucket, full.id).catch((error_: unknown) => error_)
      expect((bad as BrError).exitCode).toBe(3)
      expect((bad as BrError).message).toContain('bad or missing archive.storeChecksum')
    } finally {
      await repo.backend.save(key, original)
    }

    expect((await quickVerify(bucket, full.id)).result.ok).toBe(true)
  })
})

describe('verify --quick on a filesystem repository', () => {
  it('save keeps no store checksum, the record has none, and every object is hashed as before', async () => {
    const dir = join(tmp.path, 'fs')
    expect(await new FsBackend(join(tmp.path, 'scratch')).save('k', Buffer.from('x'))).toEqual({})
    const small = join(tmp.path, 'small-data')
    await makeSmallDataDir(small, {seed: 2})
    const record = await takeBackup(optionsFor(small, dir))
    expect(record.archive.storeChecksum).toBeUndefined()
    expect(record.manifest.storeChecksum).toBeUndefined()
    signers = []
    const {lines, result} = await quickVerify(localRepo(dir), record.id)
    expect(result.checkedBy).toEqual({[record.id]: 'hashed'})
    expect(lines.some((l) => l.includes('(hashed)'))).toBe(true)
  })
})
