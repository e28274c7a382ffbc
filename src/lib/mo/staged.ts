/**
 * A MatrixOne `BACKUP … S3OPTION` folder, read where MO wrote it: a staging prefix in a bucket.
 * The same rules as sidecars.ts checks on a local folder (complete, every sidecar with its file,
 * every file accounted for by a sidecar or tae_list), with one difference: the data files are not
 * read twice. Their checksums are checked as they stream into the pack (`read`), so nothing of
 * the cluster's data lands on a local disk and each object is read from S3 once.
 *
 * Layout (pkg/backup/fs.go `setupS3`, `setupFileservice`): MO writes under `filepath` in the
 * bucket what FILESYSTEM writes under its folder: `mo_meta`, `config/`, `hakeeper/hk_data`,
 * `tae/…` and their `.sha256` sidecars. Its S3 file service writes raw bytes; a framed copy (DISK
 * framing) is accepted too, since the hasher reads either (framing.ts).
 *
 * Guarantees: `open` checks before anything is packed that the completion files and every
 * needCopy=true object of tae_list are there, that every sidecar has its file and every
 * non-data file its sidecar, and that the small metadata files (mo_meta, tae_list, tae_sum)
 * match their sidecars; `read` yields an object's bytes as S3 sends them and throws an
 * `integrity` BrError (exit 3) at its end when they are not `entry.size` bytes or do not match
 * their sidecar or tae_list digest, which fails the pack before anything is published.
 * Not: a delete of the prefix (the online source does that, and says what is left if it fails).
 */
import type {Readable} from 'node:stream'

import type {ScannedEntry, ScannedFile} from '../archive/walk.js'
import type {S3Backend} from '../repo/s3.js'

import {comparePaths} from '../archive/manifest.js'
import {integrityError, throwIfAborted} from '../errors.js'
import {digestBytes, matchingForm, MoFileHasher, sidecarDigest, unframe} from './framing.js'
import {MO_META, parseMoMeta, parseTaeList, parseTaeSum, TAE_LIST, TAE_SUM, type TaeListEntry} from './meta.js'
import {
  checkListed,
  checkPairing,
  COMPLETION_FILES,
  type OnlineBackupSummary,
  RERUN,
  SIDECAR_SUFFIX,
} from './sidecars.js'

const MAX_SIDECAR_BYTES = 64
const MAX_METADATA_BYTES = 256 * 1024 * 1024
const FILE_MODE = 0o644
const DIR_MODE = 0o755

/** What the online source needs of a staged folder. */
export interface StagedFolder {
  /** bytes of every object under the prefix */
  bytes: number
  /** the entries to pack, as a scan of a local folder would give them (root '' first) */
  entries: ScannedEntry[]
  /** sidecar digests and tae_list entries, by path relative to the prefix */
  read(entry: ScannedFile, signal?: AbortSignal): AsyncGenerator<Buffer>
  summary: OnlineBackupSummary
  taeList: TaeListEntry[]
}

/** The objects of the staging prefix: relative key → size and time. */
type Listing = Map<string, {modifiedMs: number; size: number}>

/** Lists and checks the staging prefix `stage` (an S3Backend rooted at it). */
export async function openStaged(stage: S3Backend, signal?: AbortSignal): Promise<StagedFolder> {
  const listing: Listing = new Map()
  for (const o of await stage.list('')) listing.set(o.key, {modifiedMs: o.modifiedMs, size: o.size})
  throwIfAborted(signal)
  const where = stage.location
  for (const name of COMPLETION_FILES) {
    if (!listing.has(name)) {
      throw integrityError(`${name} is missing: the BACKUP statement did not finish writing ${where}`, RERUN)
    }
  }

  for (const rel of listing.keys()) checkPairing(rel, listing)
  const sidecars = new Map<string, Buffer>()
  for (const rel of listing.keys()) {
    if (!rel.endsWith(SIDECAR_SUFFIX)) continue
    // eslint-disable-next-line no-await-in-loop -- a few small objects
    sidecars.set(rel.slice(0, -SIDECAR_SUFFIX.length), await loadSidecar(stage, rel))
  }

  const verified = async (rel: string) => verifiedMetadata(stage, rel, sidecars.get(rel))
  const taeList = parseTaeList((await verified(TAE_LIST)).toString('utf8'))
  const listed = new Map(taeList.map((e) => [`tae/${e.path}`, e]))
  for (const [rel, entry] of listed) {
    if (entry.needCopy && !listing.has(rel)) throw integrityError(`${rel} is listed in ${TAE_LIST} but missing`, RERUN)
  }

  for (const rel of listing.keys()) {
    if (!rel.endsWith(SIDECAR_SUFFIX) && !sidecars.has(rel) && !listed.has(rel)) {
      throw integrityError(`${rel} has no sidecar and is not listed in ${TAE_LIST}`, RERUN)
    }
  }

  const meta = parseMoMeta((await verified(MO_META)).toString('utf8'))
  const sum = parseTaeSum((await verified(TAE_SUM)).toString('utf8'))
  const summary: OnlineBackupSummary = {
    backupTime: sum.backupTime,
    backupTs: sum.backupTs,
    buildInfo: meta.buildInfo,
    formatVersion: meta.formatVersion,
    size: sum.size,
    type: sum.type,
  }
  let bytes = 0
  for (const {size} of listing.values()) bytes += size
  return {
    bytes,
    entries: entriesOf(listing),
    read: (entry, readSignal) =>
      readChecked(stage, entry, {entry: listed.get(entry.path), sidecar: sidecars.get(entry.path)}, readSignal),
    summary,
    taeList,
  }
}

async function loadSidecar(stage: S3Backend, rel: string): Promise<Buffer> {
  const digest = sidecarDigest(await stage.load(rel, {maxBytes: MAX_SIDECAR_BYTES}))
  if (!digest) throw integrityError(`sidecar ${rel} is not a 32-byte SHA-256`, RERUN)
  return digest
}

/** A small metadata file's content, checked against its sidecar and read through CRC frames when it has them. */
async function verifiedMetadata(stage: S3Backend, rel: string, expected: Buffer | undefined): Promise<Buffer> {
  if (!expected) throw integrityError(`${rel} has no sidecar ${rel}${SIDECAR_SUFFIX}`, RERUN)
  const bytes = await stage.load(rel, {maxBytes: MAX_METADATA_BYTES})
  const digest = digestBytes(bytes)
  const form = matchingForm(digest, expected)
  if (!form) {
    throw integrityError(
      `${rel} does not match its sidecar ${rel}${SIDECAR_SUFFIX} (content sha256 ${(digest.framed ?? digest.raw).sha256.toString('hex')}, sidecar ${expected.toString('hex')})`,
      RERUN,
    )
  }

  return form === 'framed' ? (unframe(bytes) ?? bytes) : bytes
}

/**
 * One object's bytes as S3 sends them, hashed as they pass; at the end, its size and digest
 * against what the scan and MO recorded.
 * @yields each chunk as read
 */
async function* readChecked(
  stage: S3Backend,
  file: ScannedFile,
  expected: {entry?: TaeListEntry; sidecar?: Buffer},
  signal?: AbortSignal,
): AsyncGenerator<Buffer> {
  const hasher = new MoFileHasher()
  const body: Readable = stage.open(file.path, {signal})
  let read = 0
  try {
    for await (const chunk of body) {
      read += (chunk as Buffer).length
      if (read > file.size)
        throw integrityError(`${file.path} in the staging prefix grew past ${file.size} bytes while read`, RERUN)
      hasher.update(chunk as Buffer)
      yield chunk as Buffer
    }
  } finally {
    body.destroy()
  }

  throwIfAborted(signal)
  if (read !== file.size)
    throw integrityError(`${file.path} in the staging prefix gave ${read} of its ${file.size} bytes`, RERUN)
  const digest = hasher.digest()
  if (expected.sidecar && !matchingForm(digest, expected.sidecar)) {
    throw integrityError(
      `${file.path} does not match its sidecar ${file.path}${SIDECAR_SUFFIX} (content sha256 ${(digest.framed ?? digest.raw).sha256.toString('hex')}, sidecar ${expected.sidecar.toString('hex')})`,
      RERUN,
    )
  }

  if (expected.entry) checkListed(file.path, expected.entry, digest)
}

/** The listing as scanned entries: the root, every directory a key implies, every object. */
function entriesOf(listing: Listing): ScannedEntry[] {
  let newest = 0
  for (const {modifiedMs} of listing.values()) newest = Math.max(newest, modifiedMs)
  const dirs = new Set<string>()
  const out: ScannedEntry[] = [{mode: DIR_MODE, mtimeMs: newest, path: '', type: 'dir'}]
  for (const [path, {modifiedMs, size}] of listing) {
    const parts = path.split('/')
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'))
    out.push({mode: FILE_MODE, mtimeMs: modifiedMs, path, size, type: 'file'})
  }

  for (const dir of dirs) out.push({mode: DIR_MODE, mtimeMs: newest, path: dir, type: 'dir'})
  return out.sort((a, b) => comparePaths(a.path, b.path))
}
