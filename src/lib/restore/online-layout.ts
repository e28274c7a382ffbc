/**
 * The last step of extracting an online backup: its files arrive as MO's BACKUP folder had them
 * (`tae/<object>`, `tae/ckp/…`, `hakeeper/hk_data`, `mo_meta`, …) and are put into the layout the
 * target MO reads (src/lib/mo/layout.ts TargetLayout, from its launch configs; by default the one
 * `mo_br restore` produces: `shared/…` and `local/hk_data`). The backup's own metadata (tae_list,
 * tae_sum, mo_meta, configs, sidecars) is not part of mo-data and stays behind, to be removed with
 * the raw folder.
 *
 * When the backup's form (DISK: CRC-framed, DISK-V2: raw; layout.ts backupBackend) is the one the
 * target reads, a file is moved by rename. Otherwise it is converted, streaming (framing.ts): DISK
 * -> DISK-V2 strips the frames checking every CRC, DISK-V2 -> DISK adds them; the content's
 * SHA-256 and size are then checked against tae/tae_list (objects, ckp/, gc/; a file MO rewrote
 * while copying is listed without a digest and is checked by its CRCs only) or against hk_data's
 * sidecar. A mismatch or a bad CRC is an `integrity` BrError (exit 3), before the service is
 * stopped.
 *
 * Guarantees: only files the manifest lists are placed, each at the one place restorePath names
 * (which refuses any path that could escape); two files mapped to one place fail the restore
 * (integrity) instead of one silently replacing the other; renamed files keep their verified
 * bytes, mode, mtime and owner, converted ones get the same mode, mtime and owner; the
 * directories it makes (mo-data itself, shared/, local/, …) get the owner and group of the
 * restored BACKUP folder's root, so a MatrixOne that runs as its own user can write into them.
 * Memory stays constant (1 MiB reads, one frame carried). Not: a check of MO's own consistency
 * beyond what BACKUP's sidecars, tae_list and our manifest prove.
 */
import {createHash} from 'node:crypto'
import {createReadStream, createWriteStream} from 'node:fs'
import {chmod, chown, lstat, mkdir, rename, rm, stat, utimes} from 'node:fs/promises'
import {dirname, join} from 'node:path'
import {Transform} from 'node:stream'
import {pipeline} from 'node:stream/promises'

import type {Manifest} from '../archive/types.js'

import {integrityError, throwIfAborted} from '../errors.js'
import {FramingStream, UnframingStream} from '../mo/framing.js'
import {backupBackend, classifyOnlineFile, MO_BR_LAYOUT, restorePath, type TargetLayout} from '../mo/layout.js'
import {parseTaeList, TAE_LIST} from '../mo/meta.js'
import {readVerifiedFile} from '../mo/sidecars.js'

export interface LayoutResult {
  /** files rewritten from one framing into the other */
  converted: number
  /** files moved into mo-data's layout */
  moved: number
  /** the backup's metadata files, not restored (as mo_br restore leaves them out) */
  skipped: number
}

export interface LayOutOptions {
  /** where the target MO reads SHARED and hk_data; default mo_br's layout */
  layout?: TargetLayout
  signal?: AbortSignal
}

const READ_SIZE = 1024 * 1024
const DAMAGED = 'the backup is damaged: verify it (`moctl br verify`) and restore another backup'

/** Places the manifest's files from `raw` (a BACKUP folder's layout) into `dest` (the target's mo-data layout). */
export async function layOutOnline(
  raw: string,
  dest: string,
  manifest: Manifest,
  options: LayOutOptions = {},
): Promise<LayoutResult> {
  const {layout = MO_BR_LAYOUT, signal} = options
  const targets = new Map<string, string>()
  let skipped = 0
  for (const entry of manifest.entries) {
    if (entry.type !== 'file') continue
    const to = restorePath(entry.path, layout)
    if (to === null) {
      skipped++
      continue
    }

    const other = targets.get(to)
    if (other !== undefined) {
      throw integrityError(
        `online backup holds both ${other} and ${entry.path}, which both restore to ${to}`,
        'this backup cannot be laid out as the target reads it; report it with the backup id',
      )
    }

    targets.set(to, entry.path)
  }

  const backupFramed =
    targets.size === 0
      ? false
      : backupBackend(manifest.entries.flatMap((e) => (e.type === 'file' ? [e] : []))) === 'DISK'
  const needsConversion = (from: string) =>
    (classifyOnlineFile(from) === 'hakeeper' ? layout.hakeeperFramed : layout.sharedFramed) !== backupFramed
  const expected = await expectedDigests(
    raw,
    [...targets.values()].filter((from) => needsConversion(from)),
    signal,
  )

  // The directories of the layout, parents first, owned as the folder MO's BACKUP wrote was.
  const {gid, uid} = await stat(raw)
  const asRoot = process.geteuid?.() === 0
  const makeDir = async (path: string) => {
    await mkdir(path, {mode: 0o755})
    if (asRoot) await chown(path, uid, gid)
  }

  await makeDir(dest)
  const dirs = new Set<string>()
  for (const to of targets.keys()) {
    for (let d = dirname(to); d !== '.'; d = dirname(d)) dirs.add(d)
  }

  for (const dir of [...dirs].sort((a, b) => a.split('/').length - b.split('/').length)) {
    throwIfAborted(signal)
    // eslint-disable-next-line no-await-in-loop -- directories before the directories and files they hold
    await makeDir(join(dest, dir))
  }

  let converted = 0
  for (const [to, from] of targets) {
    throwIfAborted(signal)
    if (needsConversion(from)) {
      // eslint-disable-next-line no-await-in-loop -- one stream at a time: constant memory, disk-bound
      await convertFile(join(raw, from), join(dest, to), {
        addFrames: !backupFramed,
        expected: expected.get(from),
        label: from,
        signal,
      })
      converted++
    } else {
      // eslint-disable-next-line no-await-in-loop -- renames in one directory tree: cheap, in order
      await rename(join(raw, from), join(dest, to))
    }
  }

  return {converted, moved: targets.size - converted, skipped}
}

interface Expected {
  /** null: MO listed no digest (a file it rewrote while copying) */
  sha256: Buffer | null
  size: null | number
}

/** The content digests of the files to convert: tae_list's for tae/, the sidecar's for hk_data. */
async function expectedDigests(raw: string, paths: string[], signal?: AbortSignal): Promise<Map<string, Expected>> {
  const out = new Map<string, Expected>()
  if (paths.length === 0) return out
  if (paths.some((p) => p.startsWith('tae/'))) {
    const list = parseTaeList((await readVerifiedFile(raw, TAE_LIST, signal)).toString('utf8'))
    for (const entry of list) {
      out.set(`tae/${entry.path}`, {
        sha256: entry.sha256 ? Buffer.from(entry.sha256, 'hex') : null,
        size: entry.sha256 ? entry.size : null,
      })
    }
  }

  if (paths.includes('hakeeper/hk_data')) {
    const content = await readVerifiedFile(raw, 'hakeeper/hk_data', signal)
    out.set('hakeeper/hk_data', {sha256: createHash('sha256').update(content).digest(), size: content.length})
  }

  for (const path of paths) {
    if (!out.has(path)) {
      throw integrityError(
        `${path} is not listed in ${TAE_LIST}: its content cannot be checked after conversion`,
        DAMAGED,
      )
    }
  }

  return out
}

/**
 * Rewrites one file from one framing into the other, hashing the content (the unframed side) as
 * it passes, then checks it; the source is removed once the copy is checked.
 */
async function convertFile(
  from: string,
  to: string,
  options: {addFrames: boolean; expected?: Expected; label: string; signal?: AbortSignal},
): Promise<void> {
  const {addFrames, expected, label, signal} = options
  const info = await lstat(from)
  const hash = createHash('sha256')
  let size = 0
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk)
      size += chunk.length
      callback(null, chunk)
    },
  })
  const stages = addFrames ? [tap, new FramingStream()] : [new UnframingStream(label), tap]
  const [first, second] = stages
  await pipeline(
    createReadStream(from, {highWaterMark: READ_SIZE}),
    first,
    second,
    createWriteStream(to, {flags: 'wx', mode: 0o600}),
    {signal},
  )
  const digest = hash.digest()
  if (expected?.sha256 && (!digest.equals(expected.sha256) || size !== expected.size)) {
    throw integrityError(
      `${label}: content after ${addFrames ? 'adding' : 'stripping'} CRC frames is ${size} bytes, sha256 ${digest.toString('hex')}; the backup lists ${expected.size} bytes, sha256 ${expected.sha256.toString('hex')}`,
      DAMAGED,
    )
  }

  await chmod(to, info.mode % 0o1_0000)
  if (process.geteuid?.() === 0) await chown(to, info.uid, info.gid)
  await utimes(to, info.atime, info.mtime)
  await rm(from)
}
