/**
 * A repository in an S3-compatible store (AWS S3, MinIO, Ceph, Alibaba OSS, Tencent COS): each
 * object is the S3 object `settings.prefix + key` in `settings.bucket`, reached with the official
 * AWS SDK v3, which is loaded on first use (lazy.ts): a command on a local repository never loads
 * it, and building the backend touches nothing.
 *
 * Guarantees:
 * - `save` of bytes is one PutObject; of a stream, a multipart upload started once the first part
 *   is full (a smaller stream is one PutObject). Part sizes grow with the upload (partSize: 8 MiB,
 *   doubling every 1,000 parts, at most 5 GiB), so 10,000 parts hold 7.8 TiB: a 5 TiB archive
 *   fits. Parts up to 32 MiB are held in memory, two uploading while the next fills (at most
 *   96 MiB); larger parts (past the first 54.7 GiB) are staged in a temp file of one part each
 *   (at most three at a time) in `spoolDir`, never the whole archive. Every part and every
 *   PutObject carries its SHA-256 (x-amz-checksum-sha256), which the store checks where it
 *   supports checksums, and keeps: `save` resolves to that checksum as `stat` reports it
 *   (`sha256:<base64>` of a PutObject, compositeChecksum of a multipart upload), computed from
 *   what was sent, and fails (integrity, the object removed) if the store's reply names another.
 *   S3 lists only completed objects: a failed or aborted save aborts its
 *   upload at once; a killed one leaves an incomplete multipart upload, never an object:
 *   `listLeftovers` lists those uploads (Initiated is their time), `removePrefix` aborts them.
 * - With `settings.objectLock`, every object of a backup (`backups/<id>/<name>`, not a dot-name
 *   like the write probe; never lock.json nor moctl-br.json, which must stay removable) is written
 *   with ObjectLockMode and ObjectLockRetainUntilDate (now + days) and a Content-MD5 beside the
 *   SHA-256 (stores that predate flexible checksums ask for it with Object Lock). `stat` reports
 *   ObjectLockRetainUntilDate as `retainUntilMs`. `remove` and `removePrefix` HEAD each object
 *   first and refuse one still retained (code ERETAINED, with retainUntilMs): on a versioned
 *   bucket a plain DELETE would succeed by hiding the object behind a delete marker, freeing
 *   nothing and hiding a backup that is still there.
 * - `createExclusive` is PutObject with `If-None-Match: *` (AWS since 2024, MinIO, recent Ceph),
 *   `x-oss-forbid-overwrite: true` on Alibaba OSS (*.aliyuncs.com), `x-cos-forbid-overwrite: true`
 *   on Tencent COS (*.myqcloud.com). A store that ignores the condition (s3rver, older MinIO and
 *   Ceph, a versioned OSS bucket) is found by a probe on the first call (the same key created
 *   twice must fail the second time) and gets the listing protocol instead: each creator puts a
 *   candidate `<key>.moctl-excl-<ms>-<random>`, lists, and creates the key only if its candidate
 *   is the only one and the key is absent, then removes its candidate (after the key is there).
 *   Two creators never both win on a store with strong read-after-write consistency (all of the
 *   above since 2020-2021); when both see each other both retry after a random pause. A candidate
 *   older than a minute is a dead creator's and is ignored. The lock built on it (lock.ts) adds
 *   the lease: heartbeat, stale rules and the check before publishing.
 * - `removeIf` reads the object (bounded by the expected size), then only the creator of the
 *   marker `<key>.moctl-removing-<etag hash>` (createExclusive) deletes it, with `If-Match: <etag>`
 *   (AWS's conditional delete, Ceph; ignored where unsupported): of concurrent removers one wins.
 * - Reads: `load` refuses an object larger than its bound from the GET's Content-Length, before
 *   reading its body; `open` is one ranged GET streamed, resumed from where it broke (If-Match the
 *   first reply's ETag, so never a mix of two objects) up to three times.
 * - Faults: the SDK retries 5xx, throttling, timeouts and connection errors (standard mode, five
 *   attempts, backoff); connection and socket timeouts are set. What still fails becomes a
 *   one-line BrError naming the endpoint and bucket (explainS3Error): bad credentials, access
 *   denied, clock skew, an unreachable endpoint (exit 1); a missing bucket (exit 2). No message
 *   carries a credential: only the endpoint (without any user:password in it), the bucket, the key
 *   and the store's error code.
 * Not: encryption or integrity of content (the archive layers do that), or locking writers
 * (lock.ts). Not parallel ranged GETs: against s3rver on loopback one stream read 109-172 MB/s and
 * four 16 MiB ranges in flight 122-204 MB/s (at most 18% more, for 64 MiB more memory), while
 * restore's decrypt and decompress downstream run at 100-240 MB/s: `open` is one stream.
 */
import type {
  _Object,
  CompletedMultipartUpload,
  CompletedPart,
  PutObjectCommandInput,
  S3Client,
  S3ClientConfig,
} from '@aws-sdk/client-s3'

import {createHash, randomBytes} from 'node:crypto'
import {once} from 'node:events'
import {createReadStream} from 'node:fs'
import {mkdtemp, open as openFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join, posix} from 'node:path'
import {PassThrough, Readable} from 'node:stream'
import {setTimeout as sleep} from 'node:timers/promises'

import type {S3Settings} from './address.js'

import {BrError, integrityError} from '../errors.js'
import {formatBytes} from '../format.js'
import {lazyModule} from '../lazy.js'
import {
  type LoadOptions,
  MAX_SMALL_OBJECT_BYTES,
  type ObjectInfo,
  type RepoBackend,
  RETAINED,
  type SavedObject,
  STALE_REMOVAL_MS,
} from './backend.js'
import {BACKUPS_PREFIX} from './paths.js'

const loadSdk = lazyModule('@aws-sdk/client-s3', async () => import('@aws-sdk/client-s3'))
const loadProviders = lazyModule('@aws-sdk/credential-providers', async () => import('@aws-sdk/credential-providers'))

const MiB = 1024 * 1024
const GiB = 1024 * MiB

/** S3's limits: parts per upload, and the size of one part. */
export const MAX_PARTS = 10_000
export const MIN_PART_BYTES = 5 * MiB
export const MAX_PART_BYTES = 5 * GiB

/** How part sizes grow: `firstPartBytes`, doubled every `doubleEvery` parts, at most `maxPartBytes`. */
export interface PartPlan {
  doubleEvery: number
  firstPartBytes: number
  maxPartBytes: number
}

export const PART_PLAN: PartPlan = {doubleEvery: 1000, firstPartBytes: 8 * MiB, maxPartBytes: MAX_PART_BYTES}

/**
 * The checksum S3 keeps of an N-part upload sent with x-amz-checksum-sha256 on every part (a
 * COMPOSITE checksum): the SHA-256 of the parts' raw SHA-256s concatenated in part order, then
 * "-N"; `partSha256s` are the parts' SHA-256s in base64, in part order. Written as `stat` reports
 * it: `sha256:<base64>-<N>`.
 */
export function compositeChecksum(partSha256s: string[]): string {
  const hash = createHash('sha256')
  for (const part of partSha256s) hash.update(Buffer.from(part, 'base64'))
  return `sha256:${hash.digest('base64')}-${partSha256s.length}`
}

/** A store's x-amz-checksum-sha256 (of a PutObject, a HEAD, a completed upload) as `stat` reports it. */
export const storeChecksum = (value: string | undefined): string | undefined => (value ? `sha256:${value}` : undefined)

/** The size of part `partNumber` (1-based) under `plan`. */
export function partSize(partNumber: number, plan: PartPlan = PART_PLAN): number {
  const doublings = Math.floor((partNumber - 1) / plan.doubleEvery)
  return Math.min(plan.firstPartBytes * 2 ** Math.min(doublings, 40), plan.maxPartBytes)
}

/** The most bytes one upload can hold under `plan`: the sum of its MAX_PARTS part sizes. */
export function maxUploadBytes(plan: PartPlan = PART_PLAN): number {
  let total = 0
  for (let part = 1; part <= MAX_PARTS; part += plan.doubleEvery) {
    total += partSize(part, plan) * Math.min(plan.doubleEvery, MAX_PARTS - part + 1)
  }

  return total
}

/** Tuning a test or the bench passes in; the defaults are the product's. */
export interface S3BackendOptions {
  connectTimeoutMs?: number
  /** connection attempts per request (the SDK's maxAttempts); default 5 */
  maxAttempts?: number
  /** parts up to this size are held in memory; larger ones go to a temp file; default 32 MiB */
  memoryPartBytes?: number
  partPlan?: PartPlan
  /** parts uploading while the next one fills; default 2 */
  queueSize?: number
  /** socket idle and connect timeouts, ms; default 60 s and 10 s */
  requestTimeoutMs?: number
  /** where parts too large for memory are staged; default os.tmpdir() */
  spoolDir?: string
}

type ExclusiveMode = 'cos' | 'if-none-match' | 'listing' | 'oss'

/**
 * The conditional create a store documents, from its endpoint: Alibaba OSS (*.aliyuncs.com)
 * x-oss-forbid-overwrite, Tencent COS (*.myqcloud.com) x-cos-forbid-overwrite, anyone else
 * (AWS, MinIO, Ceph) If-None-Match. Whether the store honours it is probed on first use.
 */
export function conditionalCreateFor(endpoint?: string): Exclude<ExclusiveMode, 'listing'> {
  let host = ''
  try {
    host = new URL(endpoint ?? 'https://s3.amazonaws.com').hostname
  } catch {}

  if (host.endsWith('.aliyuncs.com')) return 'oss'
  if (host.endsWith('.myqcloud.com')) return 'cos'
  return 'if-none-match'
}

/** Names of the backend's own bookkeeping objects: never listed as objects. */
const MARKER = /\.moctl-(excl|removing|probe)-[\da-z-]+$/
const EXCL_INFIX = '.moctl-excl-'
/** A creator's candidate older than this (by the store's clock) belongs to a dead creator. */
const STALE_CANDIDATE_MS = 60_000
const DAY_MS = 24 * 60 * 60 * 1000

/** The marker removers of one version of `key` (its ETag) take turns through. */
export const removalMarkerKey = (key: string, etag: string): string =>
  `${key}.moctl-removing-${createHash('sha256').update(etag).digest('hex').slice(0, 16)}`

/** The marker the takers of a dead removal marker race for: named after its last-modified time. */
export const takeoverMarkerKey = (marker: string, modifiedMs: number): string =>
  `${marker}-${createHash('sha256').update(String(modifiedMs)).digest('hex').slice(0, 12)}`

/** A save's checksum as computed from what was sent, and as the store's reply gave it (if it did). */
interface Uploaded {
  checksum: string
  reported?: string
}

interface Part {
  body: () => Readable | Uint8Array
  dispose: () => Promise<void>
  md5?: string
  number: number
  sha256: string
  size: number
}

export class S3Backend implements RepoBackend {
  readonly location: string
  readonly settings: S3Settings
  private clientPromise?: Promise<{once: S3Client; retrying: S3Client}>
  private exclusiveMode?: Promise<ExclusiveMode>
  private readonly options: Required<Omit<S3BackendOptions, 'spoolDir'>> & {spoolDir?: string}

  constructor(address: {location: string; s3: S3Settings}, options: S3BackendOptions = {}) {
    this.location = address.location
    this.settings = address.s3
    this.options = {
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      maxAttempts: options.maxAttempts ?? 5,
      memoryPartBytes: options.memoryPartBytes ?? 32 * MiB,
      partPlan: options.partPlan ?? PART_PLAN,
      queueSize: options.queueSize ?? 2,
      requestTimeoutMs: options.requestTimeoutMs ?? 60_000,
      spoolDir: options.spoolDir,
    }
  }

  async connect(): Promise<{exists: boolean}> {
    const {ListObjectsV2Command} = await loadSdk()
    // A LIST, not HeadBucket: a HEAD reply has no body, so a 403 could not say whether the key is
    // wrong or only not allowed; and listing is what every command needs permission for anyway.
    await this.request(undefined, async (c) =>
      c.send(new ListObjectsV2Command({Bucket: this.settings.bucket, MaxKeys: 1, Prefix: this.settings.prefix})),
    )
    // An existing bucket is like an existing directory: Repository looks for moctl-br.json in it.
    return {exists: true}
  }

  async createExclusive(key: string, bytes: Uint8Array): Promise<boolean> {
    const target = this.objectKey(key)
    this.exclusiveMode ??= this.probeExclusive()
    const mode = await this.exclusiveMode
    if (mode === 'listing') return this.createByListing(key, bytes)
    for (let attempt = 0; ; attempt++) {
      try {
        // eslint-disable-next-line no-await-in-loop -- a retry after a conflict
        await this.putSmall(target, bytes, {exclusive: mode})
        return true
      } catch (error) {
        if (isAlreadyThere(error)) return false
        // AWS: another conditional write of the key was in flight; try again.
        if (errorName(error) !== 'ConditionalRequestConflict' || attempt >= 5) throw this.explain(error, key)
      }

      // eslint-disable-next-line no-await-in-loop
      await sleep(50 + Math.random() * 200)
    }
  }

  describe(): string {
    const {bucket, prefix} = this.settings
    return `S3 bucket ${bucket}${prefix ? ` under ${prefix}` : ''} at ${endpointName(this.settings)}`
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    return (await this.listRaw(prefix)).filter((o) => !MARKER.test(o.key))
  }

  async listLeftovers(prefix: string): Promise<ObjectInfo[]> {
    const {ListMultipartUploadsCommand} = await loadSdk()
    const base = this.objectKey(prefix, {allowEmpty: true})
    const found: ObjectInfo[] = (await this.listRaw(prefix)).filter((o) => MARKER.test(o.key))
    let KeyMarker: string | undefined
    let UploadIdMarker: string | undefined
    for (;;) {
      // eslint-disable-next-line no-await-in-loop -- one page after another
      const page = await this.request(prefix, async (c) =>
        c.send(
          new ListMultipartUploadsCommand({Bucket: this.settings.bucket, KeyMarker, Prefix: base, UploadIdMarker}),
        ),
      )
      for (const upload of page.Uploads ?? []) {
        if (!upload.Key?.startsWith(base)) continue
        found.push({key: this.relativeKey(upload.Key), modifiedMs: upload.Initiated?.getTime() ?? 0, size: 0})
      }

      if (!page.IsTruncated) break
      KeyMarker = page.NextKeyMarker
      UploadIdMarker = page.NextUploadIdMarker
    }

    return found.sort(byKey)
  }

  async load(key: string, options: LoadOptions = {}): Promise<Buffer> {
    const maxBytes = options.maxBytes ?? MAX_SMALL_OBJECT_BYTES
    const {GetObjectCommand} = await loadSdk()
    let reply
    try {
      const target = this.objectKey(key)
      reply = await this.request(
        key,
        async (c) => c.send(new GetObjectCommand({Bucket: this.settings.bucket, Key: target})),
        true,
      )
    } catch (error) {
      throw this.missingOr(error, key)
    }

    const body = reply.Body as Readable
    const size = reply.ContentLength ?? 0
    if (size > maxBytes) {
      body.destroy()
      throw integrityError(
        `repository object ${key} is ${formatBytes(size)}, more than the ${formatBytes(maxBytes)} it may be: refused unread`,
        'the repository was damaged or tampered with: restore it from another copy',
      )
    }

    const chunks: Buffer[] = []
    let read = 0
    try {
      for await (const chunk of body) {
        read += (chunk as Buffer).length
        if (read > maxBytes)
          throw integrityError(`repository object ${key} grew past ${formatBytes(maxBytes)} while read`)
        chunks.push(chunk as Buffer)
      }
    } catch (error) {
      body.destroy()
      throw this.explain(error, key)
    }

    if (read !== size) throw this.truncated(key, read, size)
    return Buffer.concat(chunks)
  }

  open(key: string, options: {offset?: number; signal?: AbortSignal} = {}): Readable {
    const out = new PassThrough({highWaterMark: MiB})
    this.stream(key, {offset: options.offset ?? 0, out, signal: options.signal}).catch((error: unknown) => {
      out.destroy(error as Error)
    })
    return out
  }

  async remove(key: string): Promise<void> {
    const info = await this.stat(key)
    if (!info) return
    this.refuseRetained(info)
    const {DeleteObjectCommand} = await loadSdk()
    const target = this.objectKey(key)
    await this.request(key, async (c) => c.send(new DeleteObjectCommand({Bucket: this.settings.bucket, Key: target})))
  }

  async removeIf(key: string, expected: Uint8Array): Promise<boolean> {
    const {DeleteObjectCommand, GetObjectCommand} = await loadSdk()
    const target = this.objectKey(key)
    let etag: string | undefined
    let found: Buffer
    try {
      const reply = await this.request(
        key,
        async (c) => c.send(new GetObjectCommand({Bucket: this.settings.bucket, Key: target})),
        true,
      )
      const body = reply.Body as Readable
      // Bounded by what we expect: a bigger object is not ours.
      if ((reply.ContentLength ?? 0) !== expected.length) {
        body.destroy()
        return false
      }

      etag = reply.ETag
      found = Buffer.concat(await body.toArray())
    } catch (error) {
      if (isMissingError(error)) return false
      throw this.explain(error, key)
    }

    if (!etag || !Buffer.from(expected).equals(found)) return false
    const marker = removalMarkerKey(key, etag)
    if (!(await this.createExclusive(marker, Buffer.from(etag)))) {
      // A remover killed between its marker and its delete left the marker: after a while it is
      // dead. Never deleted by name alone: two takers that both found it stale could each delete
      // it, the second the first's fresh marker, and both remove. They race for a marker named
      // after that one's time; the winner deletes it only while it is still that one.
      const left = await this.stat(marker)
      if (!left || Date.now() - left.modifiedMs < STALE_REMOVAL_MS) return false
      const takeover = takeoverMarkerKey(marker, left.modifiedMs)
      if (!(await this.createExclusive(takeover, Buffer.from(etag)))) return false
      try {
        const still = await this.stat(marker)
        if (still?.modifiedMs === left.modifiedMs) await this.deleteRaw(this.objectKey(marker))
      } finally {
        await this.deleteRaw(this.objectKey(takeover)).catch(() => {})
      }

      if (!(await this.createExclusive(marker, Buffer.from(etag)))) return false
    }

    try {
      const {HeadObjectCommand} = await loadSdk()
      const now = await this.request(
        key,
        async (c) => c.send(new HeadObjectCommand({Bucket: this.settings.bucket, Key: target})),
        true,
      ).catch((error: unknown) => {
        if (isMissingError(error)) return null
        throw this.explain(error, key)
      })
      if (!now || now.ETag !== etag) return false
      try {
        await this.request(
          key,
          async (c) => c.send(new DeleteObjectCommand({Bucket: this.settings.bucket, IfMatch: etag, Key: target})),
          true,
        )
      } catch (error) {
        if (errorName(error) === 'PreconditionFailed' || isMissingError(error)) return false
        throw this.explain(error, key)
      }

      return true
    } finally {
      await this.deleteRaw(this.objectKey(marker)).catch(() => {})
    }
  }

  async removePrefix(prefix: string): Promise<void> {
    const {AbortMultipartUploadCommand, ListMultipartUploadsCommand} = await loadSdk()
    const objects = await this.listRaw(prefix)
    const retained: number[] = []
    await eachLimited(objects, 8, async ({key}) => {
      try {
        await this.remove(key)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== RETAINED) throw error
        retained.push((error as {retainUntilMs: number}).retainUntilMs)
      }
    })
    const base = this.objectKey(prefix, {allowEmpty: true})
    const page = await this.request(prefix, async (c) =>
      c.send(new ListMultipartUploadsCommand({Bucket: this.settings.bucket, Prefix: base})),
    )
    await eachLimited(page.Uploads ?? [], 8, async (upload) => {
      if (!upload.Key?.startsWith(base)) return
      await this.abortUpload(upload.Key, upload.UploadId!, AbortMultipartUploadCommand)
    })
    if (page.IsTruncated) await this.removePrefix(prefix)
    if (retained.length > 0) throw retainedError(`${retained.length} objects under ${prefix}`, Math.max(...retained))
  }

  async save(key: string, source: Readable | Uint8Array, options: {signal?: AbortSignal} = {}): Promise<SavedObject> {
    const target = this.objectKey(key)
    const saved =
      source instanceof Uint8Array
        ? await this.putSmall(target, source, {key, signal: options.signal})
        : await this.saveStream(key, target, source, options.signal)
    // What the store says it keeps must be what we computed from what we sent: else verify --quick
    // would compare against a checksum the store never reports. A store that says nothing is fine.
    if (saved.reported !== undefined && saved.reported !== saved.checksum) {
      await this.deleteRaw(target).catch(() => {})
      throw integrityError(
        `saving ${key} to ${this.location}: the store reports checksum ${saved.reported}, the upload sent ${saved.checksum}`,
        'the store changed the object in transit or computes checksums another way: try again, and report the store if it persists',
      )
    }

    return {checksum: saved.checksum}
  }

  async stat(key: string): Promise<null | ObjectInfo> {
    const {HeadObjectCommand} = await loadSdk()
    try {
      const target = this.objectKey(key)
      const reply = await this.request(
        key,
        // ChecksumMode: the reply carries the checksum the store keeps (none where it keeps none).
        async (c) =>
          c.send(new HeadObjectCommand({Bucket: this.settings.bucket, ChecksumMode: 'ENABLED', Key: target})),
        true,
      )
      const info: ObjectInfo = {key, modifiedMs: reply.LastModified?.getTime() ?? 0, size: reply.ContentLength ?? 0}
      if (reply.ObjectLockRetainUntilDate) info.retainUntilMs = reply.ObjectLockRetainUntilDate.getTime()
      const checksum = storeChecksum(reply.ChecksumSHA256)
      if (checksum) info.checksum = checksum
      return info
    } catch (error) {
      if (isMissingError(error)) return null
      throw this.explain(error, key)
    }
  }

  private async abortUpload(
    fullKey: string,
    uploadId: string,
    Command: typeof import('@aws-sdk/client-s3').AbortMultipartUploadCommand,
  ): Promise<void> {
    try {
      await this.request(
        undefined,
        async (c) => c.send(new Command({Bucket: this.settings.bucket, Key: fullKey, UploadId: uploadId})),
        true,
      )
    } catch (error) {
      if (errorName(error) !== 'NoSuchUpload') throw this.explain(error, this.relativeKey(fullKey))
    }
  }

  private async clients(): Promise<{once: S3Client; retrying: S3Client}> {
    this.clientPromise ??= (async () => {
      // The SDK warns on stderr, once per process, that its releases after January 2027 need
      // Node 22; this plugin supports Node 20 on purpose, and a cron job's mail is no place for
      // it. The SDK's own documented switch, unless the user set it either way.
      process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
      const {S3Client} = await loadSdk()
      const s = this.settings
      const config: S3ClientConfig = {
        credentials: await this.credentials(),
        endpoint: s.endpoint,
        followRegionRedirects: !s.endpoint,
        forcePathStyle: s.forcePathStyle,
        maxAttempts: this.options.maxAttempts,
        // A body is sent with its length and its checksum in a header, never as aws-chunked with
        // a trailer (the SDK's default for streams since 3.729), which many S3-compatible stores
        // (s3rver, older MinIO and Ceph) store with its framing or refuse.
        region: s.region ?? (s.endpoint ? 'us-east-1' : undefined),
        requestChecksumCalculation: 'WHEN_REQUIRED',
        requestHandler: {
          connectionTimeout: this.options.connectTimeoutMs,
          requestTimeout: this.options.requestTimeoutMs,
        },
        responseChecksumValidation: 'WHEN_REQUIRED',
        retryMode: 'standard',
      }
      // A part staged in a file is a stream the SDK cannot rewind: its retries are ours.
      return {once: new S3Client({...config, maxAttempts: 1}), retrying: new S3Client(config)}
    })()
    return this.clientPromise
  }

  /**
   * One round of the listing protocol with our candidate in place. A creator wins only when its
   * candidate is the only live one and the key is absent; the creator of the smallest candidate
   * keeps it and looks again (the others withdraw theirs), so that contention ends in a round or
   * two. Who keeps or withdraws decides only how fast it ends, never that two win: a winner's
   * candidate is there from before its listing until after its key is written, so any later
   * creator sees the one or the other.
   */
  private async contend(key: string, candidate: string, bytes: Uint8Array): Promise<'lost' | 'withdraw' | 'won'> {
    for (let look = 0; look < 20; look++) {
      // eslint-disable-next-line no-await-in-loop -- each look after the last
      const found = await this.listRaw(key)
      if (found.some((o) => o.key === key)) return 'lost'
      const mine = found.find((o) => o.key === candidate)
      const rivals = found.filter(
        (o) =>
          o.key !== candidate &&
          o.key.startsWith(`${key}${EXCL_INFIX}`) &&
          !o.key.slice(key.length + EXCL_INFIX.length).includes('.') &&
          !(mine && mine.modifiedMs - o.modifiedMs > STALE_CANDIDATE_MS),
      )
      if (rivals.length === 0) {
        // The HEAD closes the gap of a listing that passed the key's place before a winner wrote
        // it and reached the winner's candidate after it was removed.
        // eslint-disable-next-line no-await-in-loop
        if (await this.stat(key)) return 'lost'
        // eslint-disable-next-line no-await-in-loop
        await this.putSmall(this.objectKey(key), bytes, {key})
        return 'won'
      }

      if (rivals.some((o) => o.key < candidate)) return 'withdraw'
      // eslint-disable-next-line no-await-in-loop
      await sleep(15 + Math.random() * 30)
    }

    return 'withdraw'
  }

  /**
   * The listing protocol of createExclusive, for stores that ignore conditional writes (see the
   * module header for why two creators never both win).
   */
  private async createByListing(key: string, bytes: Uint8Array): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      const candidate = `${key}${EXCL_INFIX}${String(Date.now()).padStart(13, '0')}-${randomBytes(6).toString('hex')}`
      // eslint-disable-next-line no-await-in-loop -- each round after the last
      await this.putSmall(this.objectKey(candidate), new Uint8Array(0), {key})
      try {
        // eslint-disable-next-line no-await-in-loop
        const outcome = await this.contend(key, candidate, bytes)
        if (outcome !== 'withdraw') return outcome === 'won'
      } finally {
        // eslint-disable-next-line no-await-in-loop -- after the key is written, never before
        await this.deleteRaw(this.objectKey(candidate)).catch(() => {})
      }

      if (attempt >= 40) {
        throw new BrError('error', `cannot create ${key} in ${this.location}: too many writers at once`, {
          suggestions: ['try again when the other runs on this repository have finished'],
        })
      }

      // eslint-disable-next-line no-await-in-loop -- a random pause, so that one creator ends up alone
      await sleep(Math.random() * Math.min(1000, 20 * 2 ** Math.min(attempt, 6)))
    }
  }

  private async credentials(): Promise<S3ClientConfig['credentials']> {
    const s = this.settings
    if (s.credentials && !s.roleArn) return {...s.credentials}
    const {fromNodeProviderChain, fromTemporaryCredentials} = await loadProviders()
    const base = s.credentials ? {...s.credentials} : fromNodeProviderChain(s.profile ? {profile: s.profile} : {})
    if (!s.roleArn) return base
    return fromTemporaryCredentials({
      clientConfig: {region: s.region ?? 'us-east-1'},
      masterCredentials: base,
      params: {RoleArn: s.roleArn, RoleSessionName: 'moctl-br'},
    })
  }

  private async deleteRaw(fullKey: string): Promise<void> {
    const {DeleteObjectCommand} = await loadSdk()
    await this.request(this.relativeKey(fullKey), async (c) =>
      c.send(new DeleteObjectCommand({Bucket: this.settings.bucket, Key: fullKey})),
    )
  }

  /** True when the object ends at or before `position` (false when it is missing). */
  private async endsBefore(key: string, position: number): Promise<boolean> {
    const info = await this.stat(key)
    return info !== null && position >= info.size
  }

  private explain(error: unknown, key?: string): unknown {
    return explainS3Error(error, {key, location: this.location, settings: this.settings})
  }

  /** Every object under `prefix`, the backend's own markers included, sorted by key. */
  private async listRaw(prefix: string): Promise<ObjectInfo[]> {
    const {ListObjectsV2Command} = await loadSdk()
    const base = this.objectKey(prefix, {allowEmpty: true})
    const found: ObjectInfo[] = []
    let ContinuationToken: string | undefined
    for (;;) {
      // eslint-disable-next-line no-await-in-loop -- one page after another
      const page = await this.request(prefix, async (c) =>
        c.send(new ListObjectsV2Command({Bucket: this.settings.bucket, ContinuationToken, Prefix: base})),
      )
      for (const object of page.Contents ?? ([] as _Object[])) {
        if (!object.Key?.startsWith(base)) continue
        found.push({
          key: this.relativeKey(object.Key),
          modifiedMs: object.LastModified?.getTime() ?? 0,
          size: object.Size ?? 0,
        })
      }

      if (!page.IsTruncated || !page.NextContinuationToken) break
      ContinuationToken = page.NextContinuationToken
    }

    return found.sort(byKey)
  }

  private lockParams(key: string): Pick<PutObjectCommandInput, 'ObjectLockMode' | 'ObjectLockRetainUntilDate'> {
    const lock = this.settings.objectLock
    if (!lock || !isBackupObject(key)) return {}
    return {ObjectLockMode: lock.mode, ObjectLockRetainUntilDate: new Date(Date.now() + lock.days * DAY_MS)}
  }

  private missingOr(error: unknown, key: string): unknown {
    if (isMissingError(error)) return missing(key, this.location)
    return this.explain(error, key)
  }

  private async newFiller(number: number, spool: () => Promise<string>): Promise<PartFiller> {
    const size = partSize(number, this.options.partPlan)
    return size <= this.options.memoryPartBytes
      ? new MemoryFiller(number, size)
      : FileFiller.create(number, size, await spool())
  }

  /** The full S3 key of a repository key; a key that climbs out of the prefix is refused. */
  private objectKey(key: string, options: {allowEmpty?: boolean} = {}): string {
    if (key === '' && options.allowEmpty) return this.settings.prefix
    const normal = posix.normalize(key)
    if (normal.startsWith('../') || normal === '..' || posix.isAbsolute(normal))
      throw new Error(`repository key ${key} escapes the repository`)
    // A prefix keeps its trailing '/'; normalize keeps it too.
    return this.settings.prefix + (normal === '.' ? '' : normal)
  }

  /**
   * Which conditional create this store honours: the header its vendor documents, tried once on a
   * probe object (created twice: the second must be refused), else the listing protocol.
   */
  private async probeExclusive(): Promise<ExclusiveMode> {
    const mode = conditionalCreateFor(this.settings.endpoint)
    const probe = this.objectKey(`.moctl-probe-${randomBytes(6).toString('hex')}`)
    try {
      await this.putSmall(probe, new Uint8Array(0), {exclusive: mode})
      try {
        await this.putSmall(probe, new Uint8Array(0), {exclusive: mode})
        return 'listing'
      } catch (error) {
        if (isAlreadyThere(error)) return mode
        throw error
      }
    } catch (error) {
      // A store that rejects the header outright (400, 501) has no conditional create either.
      const status = httpStatus(error)
      if (status === 400 || status === 501) return 'listing'
      throw this.explain(error)
    } finally {
      await this.deleteRaw(probe).catch(() => {})
    }
  }

  private async putSmall(
    fullKey: string,
    bytes: Uint8Array,
    options: {exclusive?: ExclusiveMode; key?: string; signal?: AbortSignal} = {},
  ): Promise<Uploaded> {
    const {PutObjectCommand} = await loadSdk()
    const key = options.key ?? this.relativeKey(fullKey)
    const lock = this.lockParams(key)
    const sha256 = createHash('sha256').update(bytes).digest('base64')
    const command = new PutObjectCommand({
      Body: bytes,
      Bucket: this.settings.bucket,
      ChecksumAlgorithm: 'SHA256',
      ChecksumSHA256: sha256,
      ContentLength: bytes.length,
      ContentMD5: lock.ObjectLockMode ? createHash('md5').update(bytes).digest('base64') : undefined,
      IfNoneMatch: options.exclusive === 'if-none-match' ? '*' : undefined,
      Key: fullKey,
      ...lock,
    })
    const vendorHeader =
      options.exclusive === 'oss'
        ? 'x-oss-forbid-overwrite'
        : options.exclusive === 'cos'
          ? 'x-cos-forbid-overwrite'
          : undefined
    if (vendorHeader) {
      command.middlewareStack.add(
        (next) => async (args) => {
          ;(args.request as {headers: Record<string, string>}).headers[vendorHeader] = 'true'
          return next(args)
        },
        {name: 'moctlForbidOverwrite', step: 'build'},
      )
    }

    try {
      const reply = await this.request(key, async (c) => c.send(command, {abortSignal: options.signal}), true)
      return {checksum: `sha256:${sha256}`, reported: storeChecksum(reply.ChecksumSHA256)}
    } catch (error) {
      if (options.exclusive && isAlreadyThere(error)) throw error
      throw this.explain(error, key)
    }
  }

  private refuseRetained(info: ObjectInfo): void {
    if (info.retainUntilMs !== undefined && info.retainUntilMs > Date.now())
      throw retainedError(info.key, info.retainUntilMs)
  }

  private relativeKey(fullKey: string): string {
    return fullKey.slice(this.settings.prefix.length)
  }

  /** Runs `run` with the retrying client; what fails is explained (explainS3Error) unless `raw`. */
  private async request<T>(key: string | undefined, run: (client: S3Client) => Promise<T>, raw = false): Promise<T> {
    const {retrying} = await this.clients()
    try {
      return await run(retrying)
    } catch (error) {
      if (raw) throw error
      throw this.explain(error, key)
    }
  }

  private async saveStream(key: string, target: string, source: Readable, signal?: AbortSignal): Promise<Uploaded> {
    const sdk = await loadSdk()
    const {once, retrying} = await this.clients()
    const lock = this.lockParams(key)
    const plan = this.options.partPlan
    let uploadId: string | undefined
    const done: CompletedPart[] = []
    const inFlight = new Set<Promise<void>>()
    let spoolDir: string | undefined
    let failure: unknown

    const uploadPart = async (part: Part): Promise<void> => {
      try {
        for (let attempt = 1; ; attempt++) {
          const body = part.body()
          try {
            // eslint-disable-next-line no-await-in-loop -- a retry after a failure
            const reply = await (body instanceof Uint8Array ? retrying : once).send(
              new sdk.UploadPartCommand({
                Body: body,
                Bucket: this.settings.bucket,
                ChecksumAlgorithm: 'SHA256',
                ChecksumSHA256: part.sha256,
                ContentLength: part.size,
                ContentMD5: part.md5,
                Key: target,
                PartNumber: part.number,
                UploadId: uploadId,
              }),
              {abortSignal: signal},
            )
            done.push({ChecksumSHA256: part.sha256, ETag: reply.ETag, PartNumber: part.number})
            return
          } catch (error) {
            if (body instanceof Readable) body.destroy()
            if (body instanceof Uint8Array || attempt >= this.options.maxAttempts || !isRetryable(error)) throw error
          }

          // eslint-disable-next-line no-await-in-loop
          await sleep(Math.min(20_000, 100 * 2 ** attempt * Math.random()))
        }
      } finally {
        await part.dispose()
      }
    }

    const startUpload = async () => {
      const reply = await retrying.send(
        new sdk.CreateMultipartUploadCommand({
          Bucket: this.settings.bucket,
          ChecksumAlgorithm: 'SHA256',
          Key: target,
          ...lock,
        }),
        // Never cut short: an upload created on the store whose id we never heard of could not be
        // aborted. The signal is checked right after.
      )
      uploadId = reply.UploadId
      if (signal?.aborted) throw signal.reason
    }

    const launch = async (part: Part) => {
      if (!uploadId) await startUpload()
      // At most queueSize parts uploading: wait for one before the next starts.
      while (inFlight.size >= this.options.queueSize) {
        // eslint-disable-next-line no-await-in-loop
        await Promise.race(inFlight)
      }

      if (failure) throw failure
      const running: Promise<void> = uploadPart(part).then(
        () => {
          inFlight.delete(running)
        },
        (error: unknown) => {
          inFlight.delete(running)
          failure ??= error
        },
      )
      inFlight.add(running)
    }

    let filler: PartFiller | undefined
    try {
      let number = 1
      const spool = async () => {
        spoolDir ??= await mkdtemp(join(this.options.spoolDir ?? tmpdir(), 'moctl-br-part-'))
        return spoolDir
      }

      const nextPart = async (full: PartFiller): Promise<PartFiller> => {
        await launch(await full.finish(Boolean(lock.ObjectLockMode)))
        number++
        if (number > MAX_PARTS)
          throw new Error(`more than ${formatBytes(maxUploadBytes(plan))}: too big for one S3 object`)
        return this.newFiller(number, spool)
      }

      filler = await this.newFiller(number, spool)
      for await (const piece of source) {
        if (signal?.aborted) throw signal.reason
        if (failure) throw failure
        let chunk = piece as Buffer
        while (chunk.length > 0) {
          // eslint-disable-next-line no-await-in-loop -- the part is handed on before the next fills
          if (filler.full) filler = await nextPart(filler)
          // eslint-disable-next-line no-await-in-loop
          chunk = await filler.add(chunk)
        }
      }

      if (signal?.aborted) throw signal.reason
      if (!uploadId) {
        // The whole stream fit in the first part: one PutObject.
        const part = await filler.finish(false)
        const bytes = part.body() as Uint8Array
        await part.dispose()
        return await this.putSmall(target, bytes, {key, signal})
      }

      await launch(await filler.finish(Boolean(lock.ObjectLockMode)))
      filler = undefined
      await Promise.all(inFlight)
      if (failure) throw failure
      const parts: CompletedMultipartUpload = {Parts: done.sort((a, b) => a.PartNumber! - b.PartNumber!)}
      const reply = await retrying.send(
        new sdk.CompleteMultipartUploadCommand({
          Bucket: this.settings.bucket,
          Key: target,
          MultipartUpload: parts,
          UploadId: uploadId,
        }),
        // Not cut short either: once asked, the object is whole or not there, and we know which.
      )
      return {
        checksum: compositeChecksum(parts.Parts!.map((p) => p.ChecksumSHA256!)),
        reported: storeChecksum(reply.ChecksumSHA256),
      }
    } catch (error) {
      failure ??= error
      await Promise.allSettled(inFlight)
      await filler?.discard()
      // Aborted at once: an incomplete upload costs storage until someone aborts it.
      if (uploadId) await this.abortUpload(target, uploadId, sdk.AbortMultipartUploadCommand).catch(() => {})
      throw signal?.aborted
        ? new BrError('interrupted', `saving ${key} to ${this.location} was interrupted`, {cause: error})
        : this.explain(error, key)
    } finally {
      if (spoolDir) await rm(spoolDir, {force: true, recursive: true})
    }
  }

  /** Streams the object from `offset` into `out`, resuming a broken reply where it broke. */
  private async stream(key: string, from: {offset: number; out: PassThrough; signal?: AbortSignal}): Promise<void> {
    const {GetObjectCommand} = await loadSdk()
    const {out, signal} = from
    const target = this.objectKey(key)
    let position = from.offset
    let etag: string | undefined
    let end: number | undefined
    for (let resumes = 0; ; resumes++) {
      let reply
      try {
        // eslint-disable-next-line no-await-in-loop -- a resume after a broken reply
        reply = await this.request(
          key,
          async (c) =>
            c.send(
              new GetObjectCommand({
                Bucket: this.settings.bucket,
                IfMatch: etag,
                Key: target,
                Range: position > 0 ? `bytes=${position}-` : undefined,
              }),
              {abortSignal: signal},
            ),
          true,
        )
      } catch (error) {
        // From the end on (or past it) there is nothing to read, as a file read there gives.
        // eslint-disable-next-line no-await-in-loop
        if (errorName(error) === 'InvalidRange' && end === undefined && (await this.endsBefore(key, position))) {
          out.end()
          return
        }

        throw this.missingOr(error, key)
      }

      etag ??= reply.ETag
      end ??= position + (reply.ContentLength ?? 0)
      // eslint-disable-next-line no-await-in-loop
      const {error, read} = await pump(reply.Body as Readable, out)
      position += read
      if (out.destroyed) return
      if (position === end && !error) {
        out.end()
        return
      }

      if (signal?.aborted || resumes >= 3)
        throw error ? this.explain(error, key) : this.truncated(key, position - from.offset, end - from.offset)
    }
  }

  private truncated(key: string, got: number, expected: number): Error {
    return new BrError(
      'error',
      `repository object ${key} in ${this.location}: the store sent ${got} of ${expected} bytes`,
      {
        suggestions: ['try again; if it persists, check the network and the store'],
      },
    )
  }
}

/**
 * Copies `body` into `out` with backpressure until it ends, fails, or `out` is destroyed (then
 * `body` is destroyed too): how many bytes went across, and the body's error if it broke.
 */
async function pump(body: Readable, out: PassThrough): Promise<{error?: unknown; read: number}> {
  let read = 0
  const stop = () => body.destroy()
  out.once('close', stop)
  try {
    for await (const chunk of body) {
      read += (chunk as Buffer).length
      if (!out.write(chunk)) await once(out, 'drain').catch(() => {})
      if (out.destroyed) break
    }

    return {read}
  } catch (error) {
    return {error, read}
  } finally {
    out.off('close', stop)
  }
}

/** Fills one part, in memory or in a temp file, hashing as it goes. */
interface PartFiller {
  /** the rest of `chunk` that did not fit */
  add(chunk: Buffer): Promise<Buffer>
  discard(): Promise<void>
  finish(md5: boolean): Promise<Part>
  readonly full: boolean
}

class MemoryFiller implements PartFiller {
  private readonly buffer: Buffer
  private filled = 0

  constructor(
    private readonly number: number,
    private readonly size: number,
  ) {
    this.buffer = Buffer.allocUnsafe(size)
  }

  get full(): boolean {
    return this.filled === this.size
  }

  async add(chunk: Buffer): Promise<Buffer> {
    const n = Math.min(chunk.length, this.size - this.filled)
    chunk.copy(this.buffer, this.filled, 0, n)
    this.filled += n
    return chunk.subarray(n)
  }

  async discard(): Promise<void> {}

  async finish(md5: boolean): Promise<Part> {
    const bytes = this.buffer.subarray(0, this.filled)
    return {
      body: () => bytes,
      async dispose() {},
      md5: md5 ? createHash('md5').update(bytes).digest('base64') : undefined,
      number: this.number,
      sha256: createHash('sha256').update(bytes).digest('base64'),
      size: this.filled,
    }
  }
}

class FileFiller implements PartFiller {
  private filled = 0
  private readonly md5 = createHash('md5')
  private readonly sha256 = createHash('sha256')

  private constructor(
    private readonly number: number,
    private readonly size: number,
    private readonly path: string,
    private readonly handle: import('node:fs/promises').FileHandle,
  ) {}

  static async create(number: number, size: number, dir: string): Promise<FileFiller> {
    const path = join(dir, `part-${number}`)
    return new FileFiller(number, size, path, await openFile(path, 'wx', 0o600))
  }

  get full(): boolean {
    return this.filled === this.size
  }

  async add(chunk: Buffer): Promise<Buffer> {
    const n = Math.min(chunk.length, this.size - this.filled)
    const piece = chunk.subarray(0, n)
    await this.handle.write(piece)
    this.sha256.update(piece)
    this.md5.update(piece)
    this.filled += n
    return chunk.subarray(n)
  }

  async discard(): Promise<void> {
    await this.handle.close().catch(() => {})
    await rm(this.path, {force: true})
  }

  async finish(md5: boolean): Promise<Part> {
    await this.handle.close()
    const {path} = this
    return {
      body: () => createReadStream(path, {highWaterMark: MiB}),
      dispose: async () => rm(path, {force: true}),
      md5: md5 ? this.md5.digest('base64') : undefined,
      number: this.number,
      sha256: this.sha256.digest('base64'),
      size: this.filled,
    }
  }
}

/** Objects of a backup take the retention; lock.json, moctl-br.json and dot-names (the write probe) never do. */
const isBackupObject = (key: string) =>
  key.startsWith(`${BACKUPS_PREFIX}/`) && !key.split('/').at(-1)!.startsWith('.') && !MARKER.test(key)

const byKey = (a: ObjectInfo, b: ObjectInfo) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)

async function eachLimited<T>(items: T[], limit: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({length: Math.min(limit, items.length)}, async () => {
      while (next < items.length) {
        // eslint-disable-next-line no-await-in-loop -- each worker takes the next item
        await run(items[next++])
      }
    }),
  )
}

const errorName = (error: unknown): string | undefined =>
  (error as {Code?: string; name?: string})?.Code ?? (error as {name?: string})?.name

const httpStatus = (error: unknown): number | undefined =>
  (error as {$metadata?: {httpStatusCode?: number}})?.$metadata?.httpStatusCode

const isMissingError = (error: unknown) => {
  const name = errorName(error)
  return name === 'NoSuchKey' || name === 'NotFound' || (httpStatus(error) === 404 && name !== 'NoSuchBucket')
}

/** A conditional create refused because the key exists: AWS 412, OSS and COS 409 with their codes. */
function isAlreadyThere(error: unknown): boolean {
  const name = errorName(error)
  if (name === 'PreconditionFailed' || name === 'FileAlreadyExists' || name === 'ObjectAlreadyExists') return true
  return httpStatus(error) === 412 || (httpStatus(error) === 409 && name !== 'ConditionalRequestConflict')
}

function isRetryable(error: unknown): boolean {
  const status = httpStatus(error)
  if (status !== undefined && (status >= 500 || status === 429)) return true
  const code = (error as NodeJS.ErrnoException).code ?? errorName(error)
  return ['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'RequestTimeout', 'SlowDown', 'TimeoutError'].includes(code ?? '')
}

function missing(key: string, location: string): Error {
  return Object.assign(new Error(`repository object ${key} not found in ${location}`), {code: 'ENOENT'})
}

function retainedError(what: string, retainUntilMs: number): Error {
  return Object.assign(
    new Error(`${what} is under S3 Object Lock retention until ${new Date(retainUntilMs).toISOString()}`),
    {code: RETAINED, retainUntilMs},
  )
}

/** How messages name the store: the endpoint without any credentials in it, or AWS and the region. */
export function endpointName(settings: Pick<S3Settings, 'endpoint' | 'region'>): string {
  if (!settings.endpoint) return `AWS S3${settings.region ? ` (${settings.region})` : ''}`
  try {
    const url = new URL(settings.endpoint)
    return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`
  } catch {
    return 'the configured endpoint'
  }
}

/**
 * The one-line error for what the SDK threw after its retries, naming the endpoint and bucket and
 * what to do: bad credentials, access denied, clock skew, an unreachable endpoint (exit 1), a
 * missing bucket (exit 2). Errors it does not know keep the store's code, never a credential.
 */
export function explainS3Error(
  error: unknown,
  context: {key?: string; location: string; settings: Pick<S3Settings, 'bucket' | 'endpoint' | 'region'>},
): unknown {
  if (error instanceof BrError || errorName(error) === 'AbortError') return error
  const {settings} = context
  const where = `S3 endpoint ${endpointName(settings)}, bucket ${settings.bucket}`
  const kind = s3Failure(error)
  if (kind === 'region' && (settings.region || settings.endpoint)) return error
  if (kind) {
    const [exit, message, hint] = FAILURES[kind]
    return new BrError(exit, `${where}: ${message(error)}`, {cause: error, suggestions: [hint]})
  }

  const name = errorName(error)
  const status = httpStatus(error)
  if (status === undefined && !(error as {$fault?: string})?.$fault) return error
  return new BrError(
    'error',
    `${where}: ${name || 'error'}${status ? ` (HTTP ${status})` : ''}${context.key ? ` (${context.key})` : ''}`,
    {
      cause: error,
      suggestions: ['try again; if it persists, check the store'],
    },
  )
}

type Failure = 'access' | 'bucket' | 'credentials' | 'region' | 'skew' | 'unreachable'

const CREDENTIAL_CODES = new Set([
  'ExpiredToken',
  'InvalidAccessKeyId',
  'InvalidClientTokenId',
  'InvalidToken',
  'SignatureDoesNotMatch',
])
const NETWORK_CODES = new Set([
  'EAI_AGAIN',
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'ETIMEDOUT',
])

/** Which of the failures a user can fix this is, if any. */
function s3Failure(error: unknown): Failure | undefined {
  const name = errorName(error) ?? ''
  const code = (error as NodeJS.ErrnoException)?.code ?? ''
  if (name === 'NoSuchBucket') return 'bucket'
  if (CREDENTIAL_CODES.has(name)) return 'credentials'
  if (name === 'RequestTimeTooSkewed') return 'skew'
  if (name === 'AccessDenied' || name === 'Forbidden' || httpStatus(error) === 403) return 'access'
  if (NETWORK_CODES.has(code) || name === 'TimeoutError' || name === 'RequestTimeout') return 'unreachable'
  if (/region is missing/i.test((error as Error)?.message ?? '')) return 'region'
  return undefined
}

/** RequestTime echoes x-amz-date (20260101T002000Z); ServerTime is ISO 8601: both as ISO 8601. */
const iso = (t = '') => t.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z')

/** How far the host clock is off, from a RequestTimeTooSkewed reply's RequestTime and ServerTime. */
function skew(error: unknown): string {
  const fields = error as {RequestTime?: string; ServerTime?: string}
  const skewMs = Date.parse(iso(fields.RequestTime)) - Date.parse(iso(fields.ServerTime))
  return Number.isFinite(skewMs) ? `off by ${Math.round(Math.abs(skewMs) / 60_000)} min` : 'off'
}

const FAILURES: Record<Failure, [exit: 'error' | 'usage', message: (error: unknown) => string, hint: string]> = {
  access: [
    'error',
    () => 'access denied',
    'check the access key and its permissions: list, get, put and delete objects, and multipart uploads, under the prefix',
  ],
  bucket: [
    'usage',
    () => 'the bucket does not exist',
    'check the bucket in --path s3://BUCKET/PREFIX (and --endpoint, --region); create the bucket first',
  ],
  credentials: [
    'error',
    (error) => `the store refused the credentials (${errorName(error)})`,
    'check the access key id and the secret key (--access-key-id, --secret-access-key-file, the AWS profile or environment)',
  ],
  region: ['usage', () => 'no region', 'pass --region (or set AWS_REGION)'],
  skew: [
    'error',
    (error) => `the host clock is ${skew(error)} from the store's`,
    'fix the clock: enable NTP (timedatectl set-ntp true)',
  ],
  unreachable: [
    'error',
    (error) => `cannot reach the store (${(error as NodeJS.ErrnoException).code || errorName(error)})`,
    'check --endpoint and that the store is up and reachable from this host',
  ],
}
