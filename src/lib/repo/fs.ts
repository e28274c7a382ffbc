/**
 * A repository in a local directory (or a mounted NFS share): each object is a file at its key's
 * path under the root. Directories are how the files are stored, never something the repository
 * sees: `list` walks them and gives object keys.
 *
 * Guarantees: `save` writes `<key>.tmp-<random>`, fsyncs it, renames it into place and fsyncs the
 * directory, so a crash (kill -9, power loss) leaves either the old state or the whole new object,
 * never a partial one under the real name; temp files are not objects (`list` skips them,
 * `listLeftovers` names them, with empty directories, for prune). Keys may not climb out of the
 * root. `createExclusive` writes a temp file and hard-links it into place (link fails if the name
 * exists: atomic and exclusive, on local filesystems and NFS alike, and the object is whole from
 * the moment it is visible); `removeIf` leaves an object that does not hold the expected bytes
 * untouched (its removers of the same bytes take turns, through a marker made the same way), then
 * renames the object aside before comparing again, so it never removes what another writer put
 * there after the comparison.
 *
 * Every read opens the file non-blocking (a FIFO opens at once instead of waiting for a writer)
 * and checks the opened handle with fstat, so what is checked is what is read: anything but a
 * regular file, or a file over the read's bound, is refused before a byte of it is read.
 */
import {createHash, randomBytes} from 'node:crypto'
import {closeSync, constants, createReadStream, type Dirent, fstatSync, openSync, type Stats} from 'node:fs'
import {link, lstat, mkdir, open, readdir, rename, rm, stat, unlink, writeFile} from 'node:fs/promises'
import {dirname, resolve, sep} from 'node:path'
import {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'

import {integrityError, usageError} from '../errors.js'
import {formatBytes} from '../format.js'
import {explainFsError} from '../fs-errors.js'
import {
  type LoadOptions,
  MAX_SMALL_OBJECT_BYTES,
  type ObjectInfo,
  type RepoBackend,
  type SavedObject,
  STALE_REMOVAL_MS,
} from './backend.js'
import {writeBackStream} from './write-back.js'

// eslint-disable-next-line no-bitwise -- open(2) flags
const READ_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK
/** What save and removeIf name their temporary files: never objects. */
const TEMP_NAME = /\.(tmp|removing)-[\da-f]{12}$/

export class FsBackend implements RepoBackend {
  /** the root, absolute */
  readonly root: string

  constructor(readonly location: string) {
    this.root = resolve(location)
  }

  async connect(): Promise<{exists: boolean}> {
    try {
      if (!(await stat(this.root)).isDirectory())
        throw usageError(`repository ${this.location} is not a directory`, 'pass --path with a directory')
      // Read now: a directory we may not list is said once, plainly, not at the first listing.
      await readdir(this.root)
      return {exists: true}
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {exists: false}
      throw await explainFsError(error, {paths: [{flag: '--path', path: this.location, role: 'repository'}]})
    }
  }

  async createExclusive(key: string, bytes: Uint8Array): Promise<boolean> {
    const target = this.path(key)
    await mkdir(dirname(target), {recursive: true})
    const temp = tempName(target)
    await writeFile(temp, bytes, {flag: 'wx', mode: 0o600})
    try {
      await fsyncPath(temp)
      await link(temp, target)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
      throw error
    } finally {
      await rm(temp, {force: true})
    }

    await fsyncPath(dirname(target))
    return true
  }

  describe(): string {
    return `local directory ${this.root}`
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    return (await this.walk(prefix)).objects
  }

  async listLeftovers(prefix: string): Promise<ObjectInfo[]> {
    return (await this.walk(prefix)).leftovers
  }

  async load(key: string, options: LoadOptions = {}): Promise<Buffer> {
    return readRegular(this.path(key), key, options.maxBytes ?? MAX_SMALL_OBJECT_BYTES)
  }

  open(key: string, options: {offset?: number; signal?: AbortSignal} = {}): Readable {
    let fd: number
    try {
      const path = this.path(key)
      fd = openSync(path, READ_FLAGS)
      const info = fstatSync(fd)
      if (!info.isFile()) {
        closeSync(fd)
        throw notRegular(key, info)
      }
    } catch (error) {
      // Fail as a stream does, not synchronously: callers handle a stream's error event.
      const failed = new Readable({read() {}})
      process.nextTick(() => failed.destroy(openFailure(error, key) as Error))
      return failed
    }

    return createReadStream('', {fd, highWaterMark: 1024 * 1024, signal: options.signal, start: options.offset ?? 0})
  }

  async remove(key: string): Promise<void> {
    await rm(this.path(key), {force: true})
    await fsyncPath(dirname(this.path(key))).catch(() => {})
  }

  async removeIf(key: string, expected: Uint8Array): Promise<boolean> {
    const target = this.path(key)
    // Removers of the same bytes take turns. Renaming first and comparing after, as each once did,
    // let a late remover of a stale lock move aside the lock its first remover's successor had just
    // created, and in that moment a third writer created its own: two holders of one lock.
    const marker = removalMarker(target, expected)
    const ours = await takeMarker(marker)
    if (ours === undefined) return false
    try {
      // Bounded by what we expect: a bigger or special file there is not ours, and must not hang us.
      const before = await readRegular(target, key, expected.length).catch(() => null)
      // Not ours to remove: left as it is, never out of its place even for a moment.
      if (!before || !Buffer.from(expected).equals(before)) return false
      return await removeAside(target, key, expected)
    } finally {
      // Only our own marker: a remover paused past STALE_REMOVAL_MS may have been taken over.
      await unlinkIfSame(marker, ours)
    }
  }

  async removePrefix(prefix: string): Promise<void> {
    // A prefix that ends a folder's name is that folder: removed whole, leftovers and all.
    if (prefix.endsWith('/')) {
      await rm(this.path(prefix), {force: true, recursive: true})
      return
    }

    const {leftovers, objects} = await this.walk(prefix)
    for (const {key} of [...objects, ...leftovers]) {
      // eslint-disable-next-line no-await-in-loop -- one removal after another
      await rm(this.path(key), {force: true, recursive: true})
    }
  }

  async save(key: string, source: Readable | Uint8Array, options: {signal?: AbortSignal} = {}): Promise<SavedObject> {
    const target = this.path(key)
    await mkdir(dirname(target), {recursive: true})
    const temp = tempName(target)
    try {
      if (source instanceof Uint8Array) {
        await writeFile(temp, source, {flag: 'wx', mode: 0o600, signal: options.signal})
        await fsyncPath(temp)
      } else {
        const handle = await open(temp, 'wx', 0o600)
        try {
          // Written back to disk as it comes (write-back.ts): the fsync here finds little dirty.
          await pipeline(source, writeBackStream(handle), {signal: options.signal})
          await handle.sync()
        } finally {
          await handle.close()
        }
      }

      await rename(temp, target)
    } catch (error) {
      await rm(temp, {force: true})
      throw error
    }

    await fsyncPath(dirname(target))
    // A file keeps no checksum of its own: verify --quick hashes it.
    return {}
  }

  async stat(key: string): Promise<null | ObjectInfo> {
    try {
      const info = await stat(this.path(key))
      // A FIFO or a directory where an object belongs is not "missing": say what it is.
      if (!info.isFile()) throw notRegular(key, info)
      return {key, modifiedMs: info.mtimeMs, size: info.size}
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw error
    }
  }

  private path(key: string): string {
    const path = resolve(this.root, ...key.split('/').filter(Boolean))
    if (path !== this.root && !path.startsWith(this.root + sep))
      throw new Error(`repository key ${key} escapes the repository`)
    return path
  }

  /**
   * The objects and leftovers whose keys start with `prefix`, sorted by key: files (and special
   * files, which reads refuse) are objects, temp files and empty directories are leftovers
   * (an empty directory's key ends in '/').
   */
  private async walk(prefix: string): Promise<{leftovers: ObjectInfo[]; objects: ObjectInfo[]}> {
    const objects: ObjectInfo[] = []
    const leftovers: ObjectInfo[] = []
    /** Visits a folder; resolves to how many entries it has. */
    const visit = async (dirKey: string): Promise<number> => {
      let entries: Dirent[]
      try {
        entries = await readdir(this.path(dirKey), {withFileTypes: true})
      } catch (error) {
        const {code} = error as NodeJS.ErrnoException
        if (code === 'ENOENT' || code === 'ENOTDIR') return 0
        throw error
      }

      // Only the folders on the way to the prefix, and everything under it.
      const wanted = entries.filter(({name}) => {
        const key = `${dirKey}${name}`
        return key.startsWith(prefix) || prefix.startsWith(`${key}/`)
      })
      // A few entries at a time: a repository of thousands of backups is thousands of folders.
      for (let i = 0; i < wanted.length; i += 16) {
        // eslint-disable-next-line no-await-in-loop -- one batch after another
        await Promise.all(
          wanted.slice(i, i + 16).map(async (entry) => {
            const key = `${dirKey}${entry.name}`
            if (entry.isDirectory()) {
              if ((await visit(`${key}/`)) > 0 || !key.startsWith(prefix)) return
              const info = await lstat(this.path(key)).catch(() => null)
              if (info) leftovers.push({key: `${key}/`, modifiedMs: info.mtimeMs, size: 0})
              return
            }

            if (!key.startsWith(prefix)) return
            const info = await lstat(this.path(key)).catch(() => null)
            if (!info) return // removed meanwhile
            ;(TEMP_NAME.test(entry.name) ? leftovers : objects).push({key, modifiedMs: info.mtimeMs, size: info.size})
          }),
        )
      }

      return entries.length
    }

    // Start at the deepest folder the prefix names: the rest of the tree cannot match.
    await visit(prefix.slice(0, prefix.lastIndexOf('/') + 1))
    const byKey = (a: ObjectInfo, b: ObjectInfo) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
    return {leftovers: leftovers.sort(byKey), objects: objects.sort(byKey)}
  }
}

/**
 * The whole of a regular file of at most `maxBytes`, checked on the opened handle. Anything else
 * (a FIFO, socket, device, directory, a file too large) is an integrity error naming the key.
 */
async function readRegular(path: string, key: string, maxBytes: number): Promise<Buffer> {
  let handle
  try {
    handle = await open(path, READ_FLAGS)
  } catch (error) {
    throw openFailure(error, key)
  }

  try {
    const info = await handle.stat()
    if (!info.isFile()) throw notRegular(key, info)
    if (info.size > maxBytes) {
      throw integrityError(
        `repository object ${key} is ${formatBytes(info.size)}, more than the ${formatBytes(maxBytes)} it may be: refused unread`,
        'the repository was damaged or tampered with: restore it from another copy',
      )
    }

    const buffer = Buffer.alloc(info.size)
    let done = 0
    while (done < info.size) {
      // eslint-disable-next-line no-await-in-loop -- each read continues where the last ended
      const {bytesRead} = await handle.read(buffer, done, info.size - done, done)
      if (bytesRead === 0) break
      done += bytesRead
    }

    return done === info.size ? buffer : buffer.subarray(0, done)
  } finally {
    await handle.close()
  }
}

function kindOf(info: Stats): string {
  if (info.isDirectory()) return 'a directory'
  if (info.isFIFO()) return 'a FIFO'
  if (info.isSocket()) return 'a socket'
  if (info.isCharacterDevice() || info.isBlockDevice()) return 'a device'
  return 'not a file'
}

const notRegular = (key: string, info: Stats) =>
  integrityError(
    `repository object ${key} is ${kindOf(info)}, not a regular file: refused`,
    'someone put it there: remove it, or restore the repository from another copy',
  )

/** open(2) fails with ENXIO on a socket: that is a special file too. */
function openFailure(error: unknown, key: string): unknown {
  if ((error as NodeJS.ErrnoException).code === 'ENXIO') {
    return integrityError(
      `repository object ${key} is a socket or device, not a regular file: refused`,
      'someone put it there: remove it, or restore the repository from another copy',
    )
  }

  return error
}

const tempName = (path: string) => `${path}.tmp-${randomBytes(6).toString('hex')}`

/** The marker removers of `expected` at `path` take turns through: `<path>.removing-<12 hex of its SHA-256>`. */
export const removalMarker = (path: string, expected: Uint8Array): string =>
  `${path}.removing-${createHash('sha256').update(expected).digest('hex').slice(0, 12)}`

/**
 * Takes a removal marker, hard-linked into place as createExclusive's objects are (exclusive on
 * NFS too, where hosts sharing a repository take over each other's stale locks; it needs no
 * fsync: a marker lost in a crash only lets the next remover in). Resolves to the marker's
 * identity, or undefined while another remover holds it (or the folder is gone: nothing to remove).
 *
 * A marker older than STALE_REMOVAL_MS was left by a remover killed in the middle. It is never
 * unlinked by name alone: two takers that both found it stale could each unlink it, the second
 * the first's fresh marker, and both remove. Its takers race for a second marker named after
 * that file (inode and mtime); the winner unlinks the marker only while it is still that file.
 * A winner killed in that moment leaves both, for an operator to remove (the lock's message
 * names them).
 */
async function takeMarker(marker: string): Promise<MarkerId | undefined> {
  const mine = await linkNew(marker)
  if (mine) return mine
  const left = await lstat(marker).catch(() => null)
  if (!left || Date.now() - left.mtimeMs < STALE_REMOVAL_MS) return undefined
  const dead = {ino: left.ino, mtimeMs: left.mtimeMs}
  const takeover = takeoverMarker(marker, dead)
  const turn = await linkNew(takeover)
  if (!turn) return undefined
  try {
    await unlinkIfSame(marker, dead)
  } finally {
    await unlinkIfSame(takeover, turn)
  }

  return linkNew(marker)
}

/** The marker the takers of a dead removal marker race for: `<marker>.removing-<12 hex of its inode and mtime>`. */
export const takeoverMarker = (marker: string, dead: MarkerId): string =>
  `${marker}.removing-${createHash('sha256').update(`${dead.ino}:${dead.mtimeMs}`).digest('hex').slice(0, 12)}`

/** A file as removeIf's markers are told apart: a new file never has both of an old one's. */
export interface MarkerId {
  ino: number
  mtimeMs: number
}

/** Links a new empty file at `path`; its identity, or undefined when the name is taken or its folder is gone. */
async function linkNew(path: string): Promise<MarkerId | undefined> {
  const temp = tempName(path)
  try {
    await writeFile(temp, '', {flag: 'wx', mode: 0o600})
    await link(temp, path)
    const made = await lstat(temp)
    return {ino: made.ino, mtimeMs: made.mtimeMs}
  } catch (error) {
    // ENOENT: the folder went away, or a cleanup removed the temp file: not taken.
    if (['EEXIST', 'ENOENT'].includes((error as NodeJS.ErrnoException).code ?? '')) return undefined
    throw error
  } finally {
    await rm(temp, {force: true})
  }
}

/** Unlinks `path` if it is still the file `id` names. */
async function unlinkIfSame(path: string, id: MarkerId): Promise<void> {
  const now = await lstat(path).catch(() => null)
  if (now?.ino === id.ino && now.mtimeMs === id.mtimeMs) await unlink(path).catch(() => {})
}

/**
 * Removes `target` if, once renamed aside, it still holds `expected`. Only a rewrite of the object
 * by its own writer (a lock's heartbeat) can come between removeIf's comparison and this rename:
 * that object is then put back, unless the key was created again meanwhile (link never
 * overwrites; the newer object stays).
 */
async function removeAside(target: string, key: string, expected: Uint8Array): Promise<boolean> {
  const aside = `${target}.removing-${randomBytes(6).toString('hex')}`
  try {
    await rename(target, aside)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw error
  }

  const found = await readRegular(aside, key, expected.length).catch(() => null)
  if (found && Buffer.from(expected).equals(found)) {
    await unlink(aside)
    await fsyncPath(dirname(target)).catch(() => {})
    return true
  }

  await link(aside, target).catch(() => {})
  await unlink(aside)
  return false
}

/** fsync of one file or directory by its path (also durable.ts's, for a staged tree). */
export async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}
