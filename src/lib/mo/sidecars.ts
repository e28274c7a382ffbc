/**
 * Checks a MatrixOne `BACKUP` folder against the checksums MO wrote into it, before we pack it:
 * a folder that passes is complete and every byte is the one MO meant to write.
 *
 * What MO writes (matrixone pkg/backup/fs.go `writeFile`, tae.go `CopyFile`, backup.go):
 * - Files MO writes from memory through `writeFile` get a sidecar `<file>.sha256` holding the raw
 *   32-byte SHA-256 of the content (not hex): `mo_meta`, `config/*`, `hakeeper/hk_data`,
 *   `tae/tae_list`, `tae/tae_sum`. mo_br's own `backup_meta` gets one too.
 * - Files MO copies from the SHARED fileservice through `CopyFile` (everything else under tae/:
 *   objects, `ckp/`, `gc/`) get no sidecar: their SHA-256 goes into a column of `tae/tae_list`
 *   instead (empty for the checkpoint files MO rewrites while copying; `mo_br check` says as much:
 *   it reads "each file in the backup folder and its sha256 file" and lists only the former).
 * - Under tae/ and hakeeper/ the bytes on disk may be CRC-framed (legacy DISK backend), sidecars
 *   included (36 bytes then); the digests are of the content either way (framing.ts).
 * - `mo_meta` is written last (`saveMetas`), after tae_list/tae_sum and hk_data: the four of them
 *   present means the statement ran to its end.
 *
 * So the rules, each failure an `integrity` BrError (exit 3) naming the path relative to the folder:
 * 1. only regular files and directories (a symlink, FIFO, socket or device is refused);
 * 2. `mo_meta`, `tae/tae_list`, `tae/tae_sum`, `hakeeper/hk_data` exist;
 * 3. every `X.sha256` has its file `X` (else: orphan), holds 32 bytes (or one valid 36-byte
 *    frame) and equals the SHA-256 of X's content;
 * 4. every file outside tae/, and tae/tae_list and tae/tae_sum, has a sidecar;
 * 5. every other file under tae/ is listed in tae/tae_list (or has a sidecar); when the list gives
 *    a SHA-256 the content matches it, and its content size matches the listed size;
 * 6. every tae_list entry with needCopy=true is in the folder (needCopy=false: it is in the base).
 *
 * Guarantees: files are hashed as they stream (constant memory, each read once, the small
 * metadata files read twice); `signal` ends the check at once with an `interrupted` BrError.
 * Not: a check of what the bytes mean (MO objects are not parsed), nor of mo_br's `backup_meta`.
 */
import {createReadStream} from 'node:fs'
import {lstat, readdir, readFile, stat} from 'node:fs/promises'
import {join} from 'node:path'

import {BrError, integrityError, throwIfAborted} from '../errors.js'
import {digestBytes, matchingForm, type MoFileDigest, MoFileHasher, sidecarDigest, unframe} from './framing.js'
import {classifyOnlineFile} from './layout.js'
import {MO_META, parseMoMeta, parseTaeList, parseTaeSum, TAE_LIST, TAE_SUM, type TaeListEntry} from './meta.js'

export const SIDECAR_SUFFIX = '.sha256'
/** what a complete BACKUP folder always holds (mo_meta is written last) */
export const COMPLETION_FILES = [MO_META, TAE_LIST, TAE_SUM, 'hakeeper/hk_data'] as const

export const RERUN = 'run the online backup again (--mode online) into an empty folder'
/** a sidecar is 32 or 36 bytes; anything much larger is not one, and is not read */
const MAX_SIDECAR_BYTES = 64

export interface SidecarProgress {
  bytesDone: number
  bytesTotal: number
  /** the file just checked, relative to the folder */
  file: string
  filesDone: number
  filesTotal: number
}

export interface CheckSidecarsOptions {
  onProgress?: (progress: SidecarProgress) => void
  signal?: AbortSignal
}

export interface SidecarCheck {
  /** bytes on disk of all regular files in the folder */
  bytes: number
  /** regular files in the folder, sidecars included */
  files: number
  /** tae_list entries with needCopy=false: in an earlier backup, not in this folder */
  inBase: number
  /** files under tae/ that tae_list lists without a SHA-256 (size checked only) */
  sizeOnly: number
  /** files checked against their .sha256 sidecar */
  viaSidecar: number
  /** files checked against tae_list's SHA-256 */
  viaTaeList: number
}

export async function checkSidecars(dir: string, options: CheckSidecarsOptions = {}): Promise<SidecarCheck> {
  const {onProgress, signal} = options
  const sizes = await listFiles(dir, signal)
  for (const name of COMPLETION_FILES) {
    if (!sizes.has(name)) {
      throw integrityError(`${name} is missing: the BACKUP statement did not finish writing ${dir}`, RERUN)
    }
  }

  const result: SidecarCheck = {bytes: 0, files: sizes.size, inBase: 0, sizeOnly: 0, viaSidecar: 0, viaTaeList: 0}
  for (const size of sizes.values()) result.bytes += size

  // Rules 3 and 4, and the kinds of all files (which also refuses a path that could escape).
  const subjects: string[] = []
  for (const rel of sizes.keys()) {
    if (!checkPairing(rel, sizes)) subjects.push(rel)
  }

  const listed = new Map<string, TaeListEntry>()
  for (const entry of parseTaeList((await readVerifiedFile(dir, TAE_LIST, signal)).toString('utf8'))) {
    listed.set(`tae/${entry.path}`, entry)
  }

  // Rule 6 first: a missing object is found without reading anything.
  for (const [rel, entry] of listed) {
    if (!entry.needCopy) result.inBase++
    else if (!sizes.has(rel)) throw integrityError(`${rel} is listed in ${TAE_LIST} but missing`, RERUN)
  }

  const progress = {bytesDone: 0, bytesTotal: result.bytes, file: '', filesDone: 0, filesTotal: result.files}
  const tick = (file: string, bytes: number) => {
    progress.bytesDone += bytes
    progress.filesDone++
    onProgress?.({...progress, file})
  }

  const checkOne = async (rel: string): Promise<void> => {
    throwIfAborted(signal)
    const sidecar = sizes.has(rel + SIDECAR_SUFFIX) ? await readSidecar(dir, rel, sizes, signal) : null
    const entry = listed.get(rel)
    if (!sidecar && !entry) throw integrityError(`${rel} has no sidecar and is not listed in ${TAE_LIST}`, RERUN)
    const digest = await hashFile(join(dir, rel), signal)
    if (sidecar) {
      if (!matchingForm(digest, sidecar)) {
        throw integrityError(
          `${rel} does not match its sidecar ${rel}${SIDECAR_SUFFIX} (content sha256 ${hex(digest)}, sidecar ${sidecar.toString('hex')})`,
          RERUN,
        )
      }

      result.viaSidecar++
    }

    if (entry) {
      checkListed(rel, entry, digest)
      if (entry.sha256) result.viaTaeList++
      else result.sizeOnly++
    }

    tick(rel, sizes.get(rel) ?? 0)
    if (sidecar) tick(rel + SIDECAR_SUFFIX, sizes.get(rel + SIDECAR_SUFFIX) ?? 0)
  }

  for (const rel of subjects) {
    // eslint-disable-next-line no-await-in-loop -- one file after the other keeps memory and I/O flat
    await checkOne(rel)
  }

  return result
}

/**
 * Rules 3 and 4 on names alone, for `rel` among the folder's files `all`: a sidecar has its file, a
 * file other than data has its sidecar (classifying `rel` also refuses a path that could escape).
 * @returns whether `rel` is a sidecar
 */
export function checkPairing(rel: string, all: {has(path: string): boolean}): boolean {
  const kind = classifyOnlineFile(rel)
  if (kind === 'sidecar') {
    const subject = rel.slice(0, -SIDECAR_SUFFIX.length)
    if (!all.has(subject) || subject.endsWith(SIDECAR_SUFFIX)) {
      throw integrityError(`sidecar ${rel} has no file ${subject}`, RERUN)
    }

    return true
  }

  if (kind !== 'data' && !all.has(rel + SIDECAR_SUFFIX)) {
    throw integrityError(`${rel} has no sidecar ${rel}${SIDECAR_SUFFIX}`, RERUN)
  }

  return false
}

/**
 * The content of a small file of a BACKUP folder (mo_meta, tae_list, tae_sum, hk_data), checked
 * against its sidecar and read through CRC frames when it has them. Read whole: these are
 * metadata, not data.
 */
export async function readVerifiedFile(dir: string, rel: string, signal?: AbortSignal): Promise<Buffer> {
  let bytes: Buffer
  try {
    bytes = await readFile(join(dir, rel), {signal})
  } catch (error) {
    throwIfAborted(signal)
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw integrityError(`${rel} is missing: the BACKUP statement did not finish writing ${dir}`, RERUN)
    }

    throw error
  }

  const expected = await readSidecar(dir, rel, undefined, signal)
  const digest = digestBytes(bytes)
  switch (matchingForm(digest, expected)) {
    case 'framed': {
      return unframe(bytes) ?? bytes
    }

    case 'raw': {
      return bytes
    }

    default: {
      throw integrityError(
        `${rel} does not match its sidecar ${rel}${SIDECAR_SUFFIX} (content sha256 ${hex(digest)}, sidecar ${expected.toString('hex')})`,
        RERUN,
      )
    }
  }
}

export interface OnlineBackupSummary {
  /** server time of the backup, as MO printed it */
  backupTime: string
  /** the backup ts (`<physical>-<logical>`), the TIMESTAMP of the next incremental; null from old servers */
  backupTs: null | string
  /** `buildinfo` of mo_meta: GoVersion, BranchName, CommitID, BuildTime, Version */
  buildInfo: Record<string, string>
  /** MO's backup format version, e.g. '0823' */
  formatVersion: string
  /** the sum of the content sizes MO listed in tae_list */
  size: number
  /** 'full' or 'incremental' as MO recorded it ('' when the statement had no TYPE) */
  type: string
}

/** What `mo_meta` and `tae/tae_sum` of a finished BACKUP folder say, each checked against its sidecar. */
export async function readBackupSummary(dir: string, signal?: AbortSignal): Promise<OnlineBackupSummary> {
  const meta = parseMoMeta((await readVerifiedFile(dir, MO_META, signal)).toString('utf8'))
  const sum = parseTaeSum((await readVerifiedFile(dir, TAE_SUM, signal)).toString('utf8'))
  return {
    backupTime: sum.backupTime,
    backupTs: sum.backupTs,
    buildInfo: meta.buildInfo,
    formatVersion: meta.formatVersion,
    size: sum.size,
    type: sum.type,
  }
}

/** Rule 5: a data file against its tae_list entry (staged.ts checks an S3 staging prefix by it too). */
export function checkListed(rel: string, entry: TaeListEntry, digest: MoFileDigest): void {
  if (entry.sha256) {
    const form = matchingForm(digest, Buffer.from(entry.sha256, 'hex'))
    if (!form) {
      throw integrityError(
        `${rel} does not match its sha256 in ${TAE_LIST} (content sha256 ${hex(digest)}, listed ${entry.sha256})`,
        RERUN,
      )
    }

    const size = form === 'raw' ? digest.raw.size : (digest.framed?.size ?? -1)
    if (size !== entry.size) {
      throw integrityError(`${rel} holds ${size} bytes of content, ${TAE_LIST} lists ${entry.size}`, RERUN)
    }

    return
  }

  if (digest.raw.size !== entry.size && digest.framed?.size !== entry.size) {
    throw integrityError(
      `${rel} holds ${digest.framed?.size ?? digest.raw.size} bytes of content, ${TAE_LIST} lists ${entry.size}`,
      RERUN,
    )
  }
}

/** Every regular file under dir: '/'-separated path relative to dir → size on disk. */
async function listFiles(dir: string, signal?: AbortSignal): Promise<Map<string, number>> {
  try {
    const info = await stat(dir)
    if (!info.isDirectory()) throw integrityError(`backup folder ${dir} is not a directory`, RERUN)
  } catch (error) {
    if (error instanceof BrError) throw error
    throw integrityError(`backup folder ${dir} cannot be read: ${(error as Error).message}`, RERUN)
  }

  const sizes = new Map<string, number>()
  const walk = async (prefix: string): Promise<void> => {
    throwIfAborted(signal)
    const entries = await readdir(prefix ? join(dir, prefix) : dir, {withFileTypes: true})
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    for (const entry of entries) {
      const rel = prefix ? `${prefix}/${entry.name}` : entry.name
      if (entry.isDirectory()) {
        // eslint-disable-next-line no-await-in-loop -- depth first, in name order
        await walk(rel)
      } else if (entry.isFile()) {
        // eslint-disable-next-line no-await-in-loop -- one stat per file
        sizes.set(rel, (await lstat(join(dir, rel))).size)
      } else {
        const what = entry.isSymbolicLink() ? 'a symlink' : 'not a regular file'
        throw integrityError(`${rel} is ${what}: a BACKUP folder holds only regular files and directories`, RERUN)
      }
    }
  }

  await walk('')
  return sizes
}

/** The digest in `<rel>.sha256`, checked for its length. */
async function readSidecar(
  dir: string,
  rel: string,
  sizes: Map<string, number> | undefined,
  signal: AbortSignal | undefined,
): Promise<Buffer> {
  const name = rel + SIDECAR_SUFFIX
  let bytes: Buffer
  try {
    const size = sizes?.get(name) ?? (await stat(join(dir, name))).size
    if (size > MAX_SIDECAR_BYTES) throw integrityError(`sidecar ${name} is ${size} bytes, not a 32-byte SHA-256`, RERUN)
    bytes = await readFile(join(dir, name), {signal})
  } catch (error) {
    throwIfAborted(signal)
    if (error instanceof BrError) throw error
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw integrityError(`${rel} has no sidecar ${name}`, RERUN)
    }

    throw error
  }

  const digest = sidecarDigest(bytes)
  if (!digest) throw integrityError(`sidecar ${name} is ${bytes.length} bytes, not a 32-byte SHA-256`, RERUN)
  return digest
}

async function hashFile(path: string, signal?: AbortSignal): Promise<MoFileDigest> {
  const hasher = new MoFileHasher()
  try {
    for await (const chunk of createReadStream(path, {highWaterMark: 1024 * 1024, signal}))
      hasher.update(chunk as Buffer)
  } catch (error) {
    throwIfAborted(signal)
    throw error
  }

  return hasher.digest()
}

/** The digest to show for a file: of its content read through frames when it has them. */
const hex = (digest: MoFileDigest): string => (digest.framed ?? digest.raw).sha256.toString('hex')
