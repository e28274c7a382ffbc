/**
 * The short-downtime cold backup (`--clone`, DESIGN.md "Where the files come from: sources"): while the
 * service is stopped, copy the files the backup will pack into a clone directory beside the data
 * directory, start the service again, then pack from the clone at leisure.
 *
 * Each file is copied with `copyFile(…, COPYFILE_FICLONE)`: a reflink, which shares the blocks
 * and takes no time or space, on filesystems that can (XFS with reflink, btrfs, bcachefs), and a
 * plain copy elsewhere (ext4, tmpfs). Whether reflinks work is learned from the first file, with
 * COPYFILE_FICLONE_FORCE; when they do not, the clone needs the files' size in free space, and is
 * refused at once when that is not there. `checkCloneRoom` asks the same before the service is
 * stopped (a probe copy of one file beside where the clone goes, removed at once).
 *
 * Guarantees: the data directory is only read; only the files to pack are copied (for an
 * incremental, the new and changed ones), so the names, modes, mtimes, owners and sizes packed
 * are the ones scanned from the data directory itself (the copies are the backup user's, and the
 * clone directory's own mode is not the data directory's), and the clone only supplies the bytes; the
 * clone is created fresh (mode 0700) and removed by removeClone, whatever happened. Not: a
 * snapshot of files that change while the service runs (it must be stopped while cloning).
 *
 * As a source (cloneSource): check the room before the stop, then the cold steps (stop, scan,
 * plan), clone, start the service, and the pack reads the clone; the pack's release removes it.
 */
import {constants} from 'node:fs'
import {copyFile, mkdir, rm, statfs, writeFile} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'
import {performance} from 'node:perf_hooks'

import type {ScannedEntry} from '../../archive/walk.js'
import type {ScriptStep} from '../../steps.js'
import type {BackupOptions, BackupTrail, CloneResult, Opened, Taken} from '../types.js'
import type {Source} from './types.js'

import {scanDataDir} from '../../archive/walk.js'
import {resolveDataDir} from '../../datadir-lock.js'
import {throwIfAborted, usageError} from '../../errors.js'
import {formatBytes, formatDuration} from '../../format.js'
import {planIncremental} from '../plan.js'
import {coldSteps, PACK_WHAT, START, startServiceStep} from './cold.js'

export type {CloneResult} from '../types.js'

/** The clone source: the cold steps, with a clone made while the service is down, and the service started before the pack. */
export function cloneSource(options: BackupOptions): Source {
  const {service} = options
  return {
    afterPack: (script) => script,
    excluded: options.exclude,
    readsDataDir: true,
    take(script) {
      const cloned = coldSteps(script.step('Check room for the clone', checkRoomStep(options)), options).step(
        'Clone the files to pack',
        cloneStep(options),
      )
      return service ? cloned.step(START, startServiceStep(service)) : cloned
    },
  }
}

/** An estimate from the running service's files, before it is stopped: cloneFiles checks again with the stopped ones. */
function checkRoomStep(options: BackupOptions): ScriptStep<BackupTrail, Opened, void> {
  return async (input, _trail, report, signal) => {
    const entries = await scanDataDir(options.dataDir, {exclude: options.exclude, signal})
    const toClone = input.base
      ? (await planIncremental(entries, input.base.manifest, {checksum: false, root: options.dataDir, signal})).toPack
      : entries
    const dest = await clonePath(input, options)
    const room = await checkCloneRoom(options.dataDir, dest, toClone)
    report.output(
      room.reflink
        ? `${dirname(dest)} can reflink: the clone takes no space`
        : `about ${formatBytes(room.bytes)} to copy, ${formatBytes(room.free)} free`,
    )
  }
}

function cloneStep(options: BackupOptions): ScriptStep<BackupTrail, Taken, Pick<Taken, 'clone' | 'packing'>> {
  return async (input, trail, report, signal) => {
    const dest = await clonePath(input, options)
    const where = {flag: '--clone-dir', path: dest, role: 'clone directory'}
    trail.paths.push(where)
    trail.release = () => removeClone(dest)
    trail.writing = where
    const needed = trail.needed?.bytes
    // A file that grew is cloned whole (its first bytes are hashed again from the clone).
    const cloned = input.packing.entries.reduce((n, e) => n + (e.type === 'file' ? e.size : 0), 0)
    trail.needed = {bytes: cloned, what: 'the files to clone'}
    await input.dataDirLock?.update({scratch: [dest]})
    const clone = await cloneFiles(options.dataDir, dest, input.packing.entries, {
      onProgress: (done, total) => report.progress({bytesDone: 0, bytesTotal: 0, filesDone: done, filesTotal: total}),
      signal,
    })
    trail.writing = undefined
    trail.needed = {bytes: needed ?? 0, what: PACK_WHAT}
    const {bytes, files, ms, reflink} = clone
    report.output(
      `${files} files, ${formatBytes(bytes)} ${reflink ? 'reflinked' : 'copied'} into ${dest} in ${formatDuration(ms)}`,
    )
    return {clone, packing: {...input.packing, release: () => removeClone(dest), root: dest}}
  }
}

/** Beside the directory a symlinked data dir points to: the same filesystem, where reflinks work. */
async function clonePath(input: Opened, options: BackupOptions): Promise<string> {
  const real = input.dataDirLock?.paths.real ?? (await resolveDataDir(options.dataDir)).real
  return clonePathFor(real, input.id, options.cloneDir)
}

/** Where the clone of `dataDir` for backup `id` goes: beside it, on the same filesystem, so reflinks can work. */
export function clonePathFor(dataDir: string, id: string, parent?: string): string {
  return join(parent ?? dirname(dataDir), `.${basename(dataDir)}.clone-${id}`)
}

const PARALLEL_COPIES = 8

/**
 * Copies the regular files among `entries` from `root` into `dest` (created here; must not exist),
 * with their directories. Rejects with a usage error, before copying more than one file, when
 * reflinks do not work and the filesystem lacks the space for plain copies.
 */
export async function cloneFiles(
  root: string,
  dest: string,
  entries: ScannedEntry[],
  options: {onProgress?: (done: number, total: number) => void; signal?: AbortSignal} = {},
): Promise<CloneResult> {
  const started = performance.now()
  const files = entries.filter((e) => e.type === 'file')
  const bytes = files.reduce((n, f) => n + f.size, 0)
  await mkdir(dest, {mode: 0o700})
  const dirs = new Set(files.map((f) => dirname(f.path)).filter((d) => d !== '.'))
  // Parents before children: sorted by path, and mkdir -p for the rest.
  for (const dir of [...dirs].sort()) {
    // eslint-disable-next-line no-await-in-loop -- a parent must exist before its children
    await mkdir(join(dest, dir), {mode: 0o700, recursive: true})
  }

  if (files.length === 0) return {bytes: 0, files: 0, ms: performance.now() - started, reflink: true}

  // The first file tells whether this filesystem can reflink at all.
  const [first, ...rest] = files
  let reflink = true
  try {
    await copyFile(join(root, first.path), join(dest, first.path), constants.COPYFILE_FICLONE_FORCE)
  } catch (error) {
    if (!['EINVAL', 'ENOSYS', 'ENOTSUP', 'EOPNOTSUPP', 'EXDEV'].includes((error as NodeJS.ErrnoException).code ?? ''))
      throw error
    reflink = false
    const fs = await statfs(dest)
    refuseWithoutRoom(bytes, fs.bavail * fs.bsize, dest)
    await copyFile(join(root, first.path), join(dest, first.path))
  }

  let done = 1
  let next = 0
  const mode = reflink ? constants.COPYFILE_FICLONE : 0
  const worker = async () => {
    while (next < rest.length) {
      throwIfAborted(options.signal)
      const file = rest[next++]
      // eslint-disable-next-line no-await-in-loop -- each worker copies one file at a time
      await copyFile(join(root, file.path), join(dest, file.path), mode)
      options.onProgress?.(++done, files.length)
    }
  }

  await Promise.all(Array.from({length: Math.min(PARALLEL_COPIES, rest.length)}, worker))
  throwIfAborted(options.signal)
  return {bytes, files: files.length, ms: performance.now() - started, reflink}
}

/**
 * Before the service is stopped: whether a clone of `entries` (an estimate, from the running
 * service's files) fits at `dest`. A probe copies one file beside `dest` by reflink and removes it;
 * where that cannot work, the free space must hold the files. Also fails (as the real clone would)
 * when the directory cannot be written. Creates nothing that stays.
 */
export async function checkCloneRoom(
  root: string,
  dest: string,
  entries: ScannedEntry[],
): Promise<{bytes: number; free: number; reflink: boolean}> {
  const files = entries.filter((e) => e.type === 'file')
  const bytes = files.reduce((n, f) => n + f.size, 0)
  const sample = files.find((f) => f.size > 0)
  const probe = `${dest}.probe`
  let reflink = false
  try {
    if (sample) {
      try {
        await copyFile(join(root, sample.path), probe, constants.COPYFILE_FICLONE_FORCE)
        reflink = true
      } catch (error) {
        if (
          !['EINVAL', 'ENOSYS', 'ENOTSUP', 'EOPNOTSUPP', 'EXDEV'].includes((error as NodeJS.ErrnoException).code ?? '')
        )
          throw error
      }
    }

    // The clone's directory must be writable, reflink or not.
    if (!reflink) await writeFile(probe, '', {flag: 'w', mode: 0o600})
  } finally {
    await rm(probe, {force: true})
  }

  const fs = await statfs(dirname(dest))
  const free = fs.bavail * fs.bsize
  if (!reflink) refuseWithoutRoom(bytes, free, dest)
  return {bytes, free, reflink}
}

function refuseWithoutRoom(bytes: number, free: number, dest: string): void {
  if (free >= bytes) return
  throw usageError(
    `not enough space to clone ${formatBytes(bytes)} beside the data directory (${formatBytes(free)} free on ${dirname(dest)}, which cannot reflink)`,
    'free some space there, pass --clone-dir on a filesystem with room, or back up without --clone',
  )
}

async function removeClone(dest: string): Promise<void> {
  await rm(dest, {force: true, recursive: true})
}
