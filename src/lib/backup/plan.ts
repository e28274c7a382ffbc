/**
 * Planning an incremental: which files of the new scan must go into the archive, which are
 * unchanged since the base (their bytes stay in the base's chain), and which were deleted.
 *
 * A file is unchanged when its size and mtime equal the base manifest's (as MO writes objects once
 * and never touches them again), or with `checksum` when its content hash equals the base's (each
 * candidate file is then read once more). A file of GREW_FROM_MIN bytes or more in the base that
 * has grown (the WAL in logservice-data is appended in place) goes to the packer with the base's
 * entry: if its first bytes are still the base's, only what comes after them is packed. Directories
 * and symlinks always go in the archive: they cost a header each, and the newest archive then holds
 * the whole tree's shape.
 */
import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {join} from 'node:path'
import {pipeline} from 'node:stream/promises'

import type {FileEntry, Manifest} from '../archive/types.js'
import type {ScannedEntry} from '../archive/walk.js'

/**
 * A file at least this large in the base that has grown is packed as its appended bytes, if it
 * still begins with the base's; a smaller one is packed whole (a part in every later manifest
 * would cost more than it saves).
 */
export const GREW_FROM_MIN = 64 * 1024

export interface IncrementalPlan {
  /** bytes of the files that go into the archive (of a file that grew, its new bytes) */
  changedBytes: number
  deleted: string[]
  /** files that grew since the base (GREW_FROM_MIN): packed as their appended bytes if they begin as before */
  grown: number
  /** files whose content was hashed to decide (--checksum) */
  reread: number
  /** what to pack: dirs, symlinks, new and changed files */
  toPack: ScannedEntry[]
  /** files listed in the manifest as in the base: their bytes stay where they are */
  unchanged: FileEntry[]
}

export async function planIncremental(
  scanned: ScannedEntry[],
  base: Manifest,
  options: {checksum: boolean; root: string; signal?: AbortSignal},
): Promise<IncrementalPlan> {
  const baseFiles = new Map<string, FileEntry>()
  for (const e of base.entries) if (e.type === 'file') baseFiles.set(e.path, e)
  const present = new Set<string>()
  const plan: IncrementalPlan = {changedBytes: 0, deleted: [], grown: 0, reread: 0, toPack: [], unchanged: []}
  for (const entry of scanned) {
    present.add(entry.path)
    const before = entry.type === 'file' ? baseFiles.get(entry.path) : undefined
    if (entry.type === 'file' && before && before.size < entry.size && before.size >= GREW_FROM_MIN) {
      // Appended to, like MO's WAL: the packer hashes the first bytes again and, if they are the
      // base's, packs only the bytes after them (write.ts).
      plan.toPack.push({...entry, grewFrom: before})
      plan.changedBytes += entry.size - before.size
      plan.grown++
      continue
    }

    if (entry.type !== 'file' || !before || before.size !== entry.size) {
      plan.toPack.push(entry)
      if (entry.type === 'file') plan.changedBytes += entry.size
      continue
    }

    let same = before.mtimeMs === entry.mtimeMs
    if (options.checksum) {
      plan.reread++
      // eslint-disable-next-line no-await-in-loop
      same = (await sha256File(join(options.root, entry.path), options.signal)) === before.sha256
    }

    if (same) {
      // Listed with today's mode and mtime, and the base's bytes (same size and content).
      plan.unchanged.push({
        ...entry,
        in: before.in,
        ...(before.parts ? {parts: before.parts} : {}),
        sha256: before.sha256,
      })
    } else {
      plan.toPack.push(entry)
      plan.changedBytes += entry.size
    }
  }

  for (const e of base.entries) if (!present.has(e.path)) plan.deleted.push(e.path)
  return plan
}

async function sha256File(path: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256')
  await pipeline(createReadStream(path, {highWaterMark: 1024 * 1024, signal}), hash)
  return hash.digest('hex')
}
