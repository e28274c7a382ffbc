/**
 * The S3 backend beyond the contract (s3-backend.contract.test.ts), against s3rver on loopback
 * behind a recording proxy (test/helpers/s3.ts).
 *
 * Checked ONLY AT THE REQUEST LEVEL, because s3rver ignores them: Object Lock (the
 * x-amz-object-lock-* headers, Content-MD5 beside the SHA-256, and what `stat` and `remove` do
 * with a retain-until date the proxy puts in a reply), conditional create (If-None-Match: *, with
 * the proxy answering 412 as AWS does), conditional delete (If-Match: <etag>), and the per-part
 * checksum (x-amz-checksum-sha256, compared here with the part's bytes). Everything else (bytes
 * saved and read back, multipart, leftovers, errors) is the real server's behaviour.
 */
import {createHash} from 'node:crypto'
import {once} from 'node:events'
import {readdir, utimes} from 'node:fs/promises'
import {basename, join} from 'node:path'
import {Readable} from 'node:stream'
import {afterAll, beforeAll, beforeEach, describe, expect, it} from 'vitest'

import type {S3Settings} from '../../../../src/lib/repo/address.js'

import {BrError} from '../../../../src/lib/errors.js'
import {isRetained, STALE_REMOVAL_MS} from '../../../../src/lib/repo/backend.js'
import {
  compositeChecksum,
  conditionalCreateFor,
  explainS3Error,
  MAX_PART_BYTES,
  MAX_PARTS,
  maxUploadBytes,
  MIN_PART_BYTES,
  PART_PLAN,
  partSize,
  removalMarkerKey,
  S3Backend,
  type S3BackendOptions,
  takeoverMarkerKey,
} from '../../../../src/lib/repo/s3.js'
import {child} from '../../../contract/backend.js'
import {freePort} from '../../../helpers/net.js'
import {type RecordedRequest, s3ErrorXml, type S3Server, startS3} from '../../../helpers/s3.js'

const MiB = 1024 * 1024
const TiB = 1024 * 1024 * MiB
/** A secret no message may ever show. */
const SECRET = 'sEcReT-do-not-print-0123456789abcdef'

let s3: S3Server
let n = 0
beforeAll(async () => {
  s3 = await startS3({recorder: true})
})
afterAll(async () => s3?.stop())
beforeEach(() => {
  s3.requests.length = 0
  s3.intercept = undefined
  s3.replyHeaders = undefined
})

/** A backend on a prefix of its own. */
function backend(extra: Partial<S3Settings> = {}, options: S3BackendOptions = {}) {
  const prefix = `t${++n}/`
  return new S3Backend({location: s3.url(prefix), s3: {...s3.settings(prefix), ...extra}}, options)
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('base64')
const objectPath = (b: S3Backend, key: string) => `/${s3.bucket}/${b.settings.prefix}${key}`
const puts = (b: S3Backend, key: string) =>
  s3.requests.filter((r) => r.method === 'PUT' && r.path === objectPath(b, key))

describe('part sizes', () => {
  it('grow from 8 MiB, doubling every 1,000 parts, within S3 limits: 10,000 parts hold more than 5 TiB', () => {
    expect(partSize(1)).toBe(8 * MiB)
    expect(partSize(1000)).toBe(8 * MiB)
    expect(partSize(1001)).toBe(16 * MiB)
    expect(partSize(3000)).toBe(32 * MiB)
    expect(partSize(10_000)).toBe(4096 * MiB)
    const sizes = Array.from({length: MAX_PARTS}, (_, i) => partSize(i + 1))
    expect(Math.min(...sizes)).toBeGreaterThanOrEqual(MIN_PART_BYTES)
    expect(Math.max(...sizes)).toBeLessThanOrEqual(MAX_PART_BYTES)
    expect(maxUploadBytes()).toBeGreaterThanOrEqual(5 * TiB)
    expect(maxUploadBytes()).toBe(sizes.reduce((a, b) => a + b, 0))
    // A fixed 8 MiB part (pgBackRest#1417's trap) would stop at 78 GiB.
    expect(maxUploadBytes({...PART_PLAN, doubleEvery: MAX_PARTS})).toBe(10_000 * 8 * MiB)
  })
})

describe('compositeChecksum', () => {
  it("is the SHA-256 of the parts' raw SHA-256s, in part order, with the part count", () => {
    const parts = [Buffer.from('part one'), Buffer.from('part two, longer')]
    // Computed with coreutils and openssl: (sha256sum p1; sha256sum p2) | xxd -r -p | openssl dgst -sha256 -binary | base64
    expect(compositeChecksum(parts.map((p) => sha256(p)))).toBe('sha256:/ke57zbUzfUzLS9IQyX0gWkkigSUvCk8NyxzZxy7bS8=-2')
    // The same from the raw digests, without the function's base64 round trip.
    const raw = Buffer.concat(parts.map((p) => createHash('sha256').update(p).digest()))
    expect(compositeChecksum(parts.map((p) => sha256(p)))).toBe(
      `sha256:${createHash('sha256').update(raw).digest('base64')}-2`,
    )
    // Part order matters, and one part is still a composite (not the object's own SHA-256).
    expect(compositeChecksum(parts.map((p) => sha256(p)).reverse())).not.toBe(
      compositeChecksum(parts.map((p) => sha256(p))),
    )
    expect(compositeChecksum([sha256(parts[0])])).toBe(
      `sha256:${createHash('sha256').update(createHash('sha256').update(parts[0]).digest()).digest('base64')}-1`,
    )
  })
})

describe('store checksums', () => {
  it('save resolves to the checksum the store keeps: sha256:<base64> of a PutObject, the composite of a multipart upload', async () => {
    const b = backend({}, {partPlan: {doubleEvery: 1000, firstPartBytes: 64 * 1024, maxPartBytes: MiB}})
    expect(await b.save('bytes', Buffer.from('xyz'))).toEqual({checksum: `sha256:${sha256(Buffer.from('xyz'))}`})
    const data = Buffer.alloc(150_000, 3)
    const saved = await b.save('backups/m/data', Readable.from([data]))
    // What the test computes from the part layout it expects (64 KiB, 64 KiB, the rest).
    const layout = [data.subarray(0, 65_536), data.subarray(65_536, 131_072), data.subarray(131_072)]
    expect(saved).toEqual({checksum: compositeChecksum(layout.map((p) => sha256(p)))})
    const sent = puts(b, 'backups/m/data').map((r) => r.body.length)
    expect(sent.sort()).toEqual([18_928, 65_536, 65_536])
  })

  it('stat asks for the checksum (x-amz-checksum-mode) and reports what the store keeps; none when it keeps none', async () => {
    const b = backend()
    await b.save('k', Buffer.from('abc'))
    const plain = await b.stat('k')
    expect(plain?.checksum).toBeUndefined() // s3rver keeps none
    const head = s3.requests.find((r) => r.method === 'HEAD')
    expect(head?.headers['x-amz-checksum-mode']).toBe('ENABLED')
    s3.replyHeaders = (r, headers) => {
      if (r.method === 'HEAD') headers['x-amz-checksum-sha256'] = 'Zm9v-3'
    }

    try {
      expect(await b.stat('k')).toMatchObject({checksum: 'sha256:Zm9v-3', size: 3})
    } finally {
      s3.replyHeaders = undefined
    }
  })

  it('a store that replies with another checksum than the one sent fails the save (integrity) and the object is removed', async () => {
    const b = backend()
    s3.replyHeaders = (r, headers) => {
      if (r.method === 'PUT') headers['x-amz-checksum-sha256'] = sha256(Buffer.from('something else'))
    }

    let error: unknown
    try {
      error = await b.save('backups/c/backup.json', Buffer.from('{}')).catch((error_: unknown) => error_)
    } finally {
      s3.replyHeaders = undefined
    }

    expect(error).toBeInstanceOf(BrError)
    expect((error as BrError).exitCode).toBe(3)
    expect((error as BrError).message).toContain('backups/c/backup.json')
    expect(await b.stat('backups/c/backup.json')).toBeNull()
  })
})

describe('S3Backend on s3rver, request level', () => {
  it('streams a save as a multipart upload whose parts grow, each with its SHA-256; large parts go through a temp file', async () => {
    const b = backend(
      {},
      {memoryPartBytes: 128 * 1024, partPlan: {doubleEvery: 2, firstPartBytes: 64 * 1024, maxPartBytes: MiB}},
    )
    const data = Buffer.alloc(3 * MiB + 5)
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) % 253
    await b.save('backups/x/data', Readable.from([data.subarray(0, 100_000), data.subarray(100_000)]))
    const created = s3.requests.find((r) => r.method === 'POST' && r.query.has('uploads'))
    expect(created?.headers['x-amz-checksum-algorithm']).toBe('SHA256')
    // Two parts are in flight at once: they may arrive out of order.
    const parts = puts(b, 'backups/x/data')
      .filter((r) => r.query.has('partNumber'))
      .sort((x, y) => Number(x.query.get('partNumber')) - Number(y.query.get('partNumber')))
    expect(parts.map((r) => r.body.length)).toEqual([
      65_536,
      65_536,
      131_072,
      131_072,
      262_144,
      262_144,
      524_288,
      524_288,
      MiB,
      131_077,
    ])
    let offset = 0
    for (const part of parts) {
      expect(part.headers['x-amz-checksum-sha256']).toBe(sha256(part.body))
      expect(part.headers['content-encoding']).toBeUndefined() // never aws-chunked
      expect(part.body.equals(data.subarray(offset, offset + part.body.length))).toBe(true)
      offset += part.body.length
    }

    expect((await b.load('backups/x/data', {maxBytes: data.length})).equals(data)).toBe(true)
    expect(await b.listLeftovers('')).toEqual([])
  })

  it('saves a small stream as one PutObject with its SHA-256, and bytes likewise', async () => {
    const b = backend()
    await b.save('small', Readable.from([Buffer.from('a'), Buffer.from('bc')]))
    await b.save('bytes', Buffer.from('xyz'))
    const [small] = puts(b, 'small')
    expect(small.query.has('partNumber')).toBe(false)
    expect(small.headers['x-amz-checksum-sha256']).toBe(sha256(Buffer.from('abc')))
    expect(puts(b, 'bytes')[0].headers['x-amz-checksum-sha256']).toBe(sha256(Buffer.from('xyz')))
    expect((await b.load('small')).toString()).toBe('abc')
  })

  it('with Object Lock: every backup object carries mode, retain-until and Content-MD5; lock.json and the write probe do not', async () => {
    const b = backend(
      {objectLock: {days: 7, mode: 'COMPLIANCE'}},
      {partPlan: {doubleEvery: 1000, firstPartBytes: 64 * 1024, maxPartBytes: MiB}},
    )
    const before = Date.now()
    await b.save('backups/x/backup.json', Buffer.from('{}'))
    await b.save('backups/x/data', Readable.from([Buffer.alloc(200_000, 1)]))
    await b.save('backups/x/.write-probe', Buffer.from('probe'))
    await b.save('lock.json', Buffer.from('lock'))
    const record = puts(b, 'backups/x/backup.json')[0]
    expect(record.headers['x-amz-object-lock-mode']).toBe('COMPLIANCE')
    const until = Date.parse(record.headers['x-amz-object-lock-retain-until-date'] as string)
    expect(until).toBeGreaterThanOrEqual(before + 7 * 86_400_000 - 1000)
    expect(until).toBeLessThanOrEqual(Date.now() + 7 * 86_400_000 + 1000)
    expect(record.headers['content-md5']).toBe(createHash('md5').update('{}').digest('base64'))
    expect(record.headers['x-amz-checksum-sha256']).toBe(sha256(Buffer.from('{}')))
    const created = s3.requests.find((r) => r.method === 'POST' && r.query.has('uploads'))
    expect(created?.headers['x-amz-object-lock-mode']).toBe('COMPLIANCE')
    expect(created?.headers['x-amz-object-lock-retain-until-date']).toBeDefined()
    for (const part of puts(b, 'backups/x/data')) expect(part.headers['content-md5']).toBeDefined()
    for (const key of ['lock.json', 'backups/x/.write-probe'])
      expect(puts(b, key)[0].headers['x-amz-object-lock-mode']).toBeUndefined()
  })

  it('stat reports the retain-until date; remove and removePrefix refuse a retained object (ERETAINED) without sending a DELETE', async () => {
    const b = backend()
    await b.save('backups/r/backup.json', Buffer.from('{}'))
    const until = new Date(Date.now() + 3 * 86_400_000)
    until.setMilliseconds(0)
    // s3rver keeps no retention: the proxy adds the header S3 sends for a retained object.
    s3.intercept = (r) => {
      if (r.method !== 'HEAD') return
      return {
        headers: {
          'content-length': '2',
          'last-modified': new Date().toUTCString(),
          'x-amz-object-lock-mode': 'COMPLIANCE',
          'x-amz-object-lock-retain-until-date': until.toISOString(),
        },
        status: 200,
      }
    }

    expect(await b.stat('backups/r/backup.json')).toMatchObject({retainUntilMs: until.getTime(), size: 2})
    const refused = await b.remove('backups/r/backup.json').catch((error: unknown) => error)
    expect(isRetained(refused)).toBe(true)
    expect((refused as {retainUntilMs: number}).retainUntilMs).toBe(until.getTime())
    expect(isRetained(await b.removePrefix('backups/r/').catch((error: unknown) => error))).toBe(true)
    expect(s3.requests.filter((r) => r.method === 'DELETE')).toEqual([])
    s3.intercept = undefined
    expect(await b.stat('backups/r/backup.json')).toMatchObject({size: 2})
  })

  it('createExclusive sends If-None-Match: * where the store honours it (the proxy answers 412 as AWS does), and takes 412 as "exists"', async () => {
    const b = backend()
    const created = new Set<string>()
    s3.intercept = (r: RecordedRequest) => {
      if (r.method !== 'PUT' || r.headers['if-none-match'] !== '*') return
      if (created.has(r.path))
        return {
          body: s3ErrorXml('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold'),
          status: 412,
        }
      created.add(r.path)
    }

    expect(await b.createExclusive('lock.json', Buffer.from('one'))).toBe(true)
    expect(await b.createExclusive('lock.json', Buffer.from('two'))).toBe(false)
    expect((await b.load('lock.json')).toString()).toBe('one')
    const lockPuts = puts(b, 'lock.json')
    expect(lockPuts).toHaveLength(2)
    for (const put of lockPuts) expect(put.headers['if-none-match']).toBe('*')
    // The probe (created twice, refused the second time) ran once and left nothing.
    expect(s3.requests.filter((r) => r.method === 'PUT' && r.path.includes('.moctl-probe-'))).toHaveLength(2)
    expect(await b.list('')).toMatchObject([{key: 'lock.json'}])
    expect(await b.listLeftovers('')).toEqual([])
  })

  it('removeIf deletes with If-Match: the ETag of what it compared', async () => {
    const b = backend()
    await b.save('lock.json', Buffer.from('mine'))
    expect(await b.removeIf('lock.json', Buffer.from('mine'))).toBe(true)
    const del = s3.requests.find((r) => r.method === 'DELETE' && r.path === objectPath(b, 'lock.json'))
    expect(del?.headers['if-match']).toBe(`"${createHash('md5').update('mine').digest('hex')}"`)
  })

  it('a removal marker left by a killed remover: a held takeover leaves everything in place; then one of many removers takes it over', async () => {
    const b = backend()
    await b.save('lock.json', Buffer.from('stale'))
    const etag = `"${createHash('md5').update('stale').digest('hex')}"`
    const marker = removalMarkerKey('lock.json', etag)
    await b.save(marker, Buffer.from(etag))
    // s3rver's Last-Modified is its file's mtime: the marker of a remover killed 10 minutes ago.
    const file = (await readdir(s3.directory, {recursive: true})).find(
      (name) => name.includes(basename(marker)) && name.endsWith('._S3rver_object'),
    )
    expect(file).toBeTypeOf('string')
    const old = new Date(Date.now() - STALE_REMOVAL_MS - 5 * 60_000)
    await utimes(join(s3.directory, file!), old, old)
    const takeover = takeoverMarkerKey(marker, (await b.stat(marker))!.modifiedMs)
    await b.save(takeover, Buffer.from('another remover is taking it over'))
    expect(await b.removeIf('lock.json', Buffer.from('stale'))).toBe(false)
    expect(await b.stat('lock.json')).not.toBeNull()
    expect(await b.stat(marker)).not.toBeNull()
    await b.remove(takeover)
    const removed = await Promise.all(Array.from({length: 8}, () => b.removeIf('lock.json', Buffer.from('stale'))))
    expect(removed.filter(Boolean)).toHaveLength(1)
    expect(await b.stat('lock.json')).toBeNull()
    expect(await b.stat(marker)).toBeNull()
    expect(await b.stat(takeover)).toBeNull()
  })

  it('retries a 503 and a throttling reply, and the save lands', async () => {
    const b = backend()
    let refused = 0
    s3.intercept = (r) => {
      if (r.method !== 'PUT' || refused >= 2) return
      refused++
      return refused === 1
        ? {body: s3ErrorXml('ServiceUnavailable', 'try again'), status: 503}
        : {body: s3ErrorXml('SlowDown', 'Please reduce your request rate.'), status: 503}
    }

    await b.save('k', Buffer.from('v'))
    expect(puts(b, 'k')).toHaveLength(3)
    expect((await b.load('k')).toString()).toBe('v')
  })

  it('a save killed halfway (SIGKILL) leaves nothing listed, and an incomplete upload that listLeftovers sees and removePrefix aborts', async () => {
    const b = backend()
    // 12 MiB: past the first 8 MiB part, so the multipart upload has begun.
    const {proc} = await child(['save-slow', b.location, 'backups/k/data.tar.zst.age', '12'], 'saving', b.settings)
    proc.kill('SIGKILL')
    await once(proc, 'exit')
    expect(await b.list('')).toEqual([])
    const left = await b.listLeftovers('backups/')
    expect(left).toEqual([{key: 'backups/k/data.tar.zst.age', modifiedMs: expect.any(Number), size: 0}])
    expect(Math.abs(left[0].modifiedMs - Date.now())).toBeLessThan(60_000)
    await b.removePrefix('backups/k/')
    expect(await b.listLeftovers('')).toEqual([])
    expect(s3.requests.some((r) => r.method === 'DELETE' && r.query.has('uploadId'))).toBe(true)
  }, 30_000)
})

describe('S3 errors: one line naming endpoint and bucket, the right exit code, never a secret', () => {
  const messages: string[] = []
  afterAll(() => {
    expect(messages.length).toBeGreaterThanOrEqual(4)
    for (const text of messages) expect(text).not.toContain(SECRET)
  })

  async function failure(promise: Promise<unknown>): Promise<BrError> {
    const error = await promise.then(
      () => {
        throw new Error('expected a failure')
      },
      (error_: unknown) => error_,
    )
    expect(error).toBeInstanceOf(BrError)
    const e = error as BrError
    messages.push(e.message, ...e.suggestions, String(e))
    expect(e.message).not.toContain('\n')
    return e
  }

  it('an unknown access key: exit 1, "refused the credentials", with the fix', async () => {
    const prefix = 'bad/'
    const b = new S3Backend({
      location: s3.url(prefix),
      s3: {...s3.settings(prefix), credentials: {accessKeyId: 'NOT-A-KEY', secretAccessKey: SECRET}},
    })
    const e = await failure(b.connect())
    expect(e.exitCode).toBe(1)
    expect(e.message).toBe(
      `S3 endpoint ${s3.endpoint}, bucket ${s3.bucket}: the store refused the credentials (InvalidAccessKeyId)`,
    )
    expect(e.suggestions[0]).toMatch(/^check the access key id and the secret key/)
  })

  it('a missing bucket: exit 2 (usage)', async () => {
    const b = new S3Backend({
      location: 's3://no-such-bucket/',
      s3: {...s3.settings(), bucket: 'no-such-bucket', credentials: {accessKeyId: 'S3RVER', secretAccessKey: SECRET}},
    })
    const e = await failure(b.connect())
    expect(e.exitCode).toBe(2)
    expect(e.message).toBe(`S3 endpoint ${s3.endpoint}, bucket no-such-bucket: the bucket does not exist`)
  })

  it('a dead endpoint: exit 1, "cannot reach the store", after the retries', async () => {
    const endpoint = `http://user:${SECRET}@127.0.0.1:${await freePort()}`
    const b = new S3Backend(
      {
        location: 's3://b/',
        s3: {
          bucket: 'b',
          credentials: {accessKeyId: 'S3RVER', secretAccessKey: SECRET},
          endpoint,
          forcePathStyle: true,
          prefix: '',
        },
      },
      {maxAttempts: 2},
    )
    const e = await failure(b.connect())
    expect(e.exitCode).toBe(1)
    expect(e.message).toMatch(
      /^S3 endpoint http:\/\/127\.0\.0\.1:\d+, bucket b: cannot reach the store \(ECONNREFUSED\)$/,
    )
    const f = await failure(b.save('k', Buffer.from('x')))
    expect(f.message).toContain('cannot reach the store')
  })

  it('a clock off by 20 minutes: exit 1, saying by how much (mapping: s3rver never lets it through, the SDK corrects its clock and retries)', () => {
    const skewed = Object.assign(
      new Error('The difference between the request time and the current time is too large.'),
      {
        $fault: 'client',
        $metadata: {httpStatusCode: 403},
        name: 'RequestTimeTooSkewed',
        RequestTime: '20260101T002000Z', // as S3 echoes x-amz-date
        ServerTime: '2026-01-01T00:00:00Z',
      },
    )
    const e = explainS3Error(skewed, {
      location: 's3://b/',
      settings: {bucket: 'b', endpoint: 'https://minio.example:9000'},
    }) as BrError
    messages.push(e.message)
    expect(e.exitCode).toBe(1)
    expect(e.message).toBe(
      "S3 endpoint https://minio.example:9000, bucket b: the host clock is off by 20 min from the store's",
    )
    expect(e.suggestions).toEqual(['fix the clock: enable NTP (timedatectl set-ntp true)'])
  })

  it('picks the conditional create each store documents', () => {
    expect(conditionalCreateFor()).toBe('if-none-match')
    expect(conditionalCreateFor('http://127.0.0.1:9000')).toBe('if-none-match')
    expect(conditionalCreateFor('https://oss-cn-hangzhou.aliyuncs.com')).toBe('oss')
    expect(conditionalCreateFor('https://cos.ap-beijing.myqcloud.com')).toBe('cos')
  })
})
