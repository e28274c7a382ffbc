/**
 * A repository in a local directory (or a mounted NFS share).
 *
 * Guarantees: objects are written to `<key>.tmp-<random>`, fsynced, renamed into place and the
 * directory fsynced, so a crash leaves either the old state or the whole new object, never a
 * partial one under the real name. Keys may not climb out of the root. `createExclusive` writes a
 * temp file and hard-links it into place (link fails if the name exists: atomic and exclusive, on
 * local filesystems and NFS alike, and the object is whole from the moment it is visible);
 * `removeIf` renames the object aside before comparing, so it never removes what another writer
 * put there after the comparison.
 *
 * Every read opens the file non-blocking (a FIFO opens at once instead of waiting for a writer)
 * and checks the opened handle with fstat, so what is checked is what is read: anything but a
 * regular file, or a file over the read's bound, is refused before a byte of it is read.
 */
import {randomBytes} from 'node:crypto'
import {closeSync, constants, createReadStream, createWriteStream, fstatSync, openSync, type Stats} from 'node:fs'
import {link, lstat, mkdir, open, readdir, rename, rm, stat, unlink, writeFile} from 'node:fs/promises'
import {dirname, resolve, sep} from 'node:path'
import {Readable} from 'node:stream'
import {finished} from 'node:stream/promises'

import {integrityError} from '../errors.js'
import {formatBytes} from '../format.js'
import {type AtomicWriter, MAX_SMALL_OBJECT_BYTES, type ReadOptions, type RepoBackend} from './backend.js'

// eslint-disable-next-line no-bitwise -- open(2) flags
const READ_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK

export class FsBackend implements RepoBackend {
  constructor(readonly root: string) {}

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

  createReadStream(key: string, options: {signal?: AbortSignal} = {}): Readable {
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

    return createReadStream('', {fd, highWaterMark: 1024 * 1024, signal: options.signal})
  }

  describe(): string {
    return `local directory ${this.root}`
  }

  /** Anything at that name: a special file where an object belongs exists, and is refused when read. */
  async exists(key: string): Promise<boolean> {
    try {
      await lstat(this.path(key))
      return true
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
      throw error
    }
  }

  async list(prefix: string): Promise<string[]> {
    try {
      return (await readdir(this.path(prefix))).sort()
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw error
    }
  }

  async openWriter(key: string): Promise<AtomicWriter> {
    const target = this.path(key)
    await mkdir(dirname(target), {recursive: true})
    const temp = tempName(target)
    const stream = createWriteStream(temp, {flags: 'wx', highWaterMark: 1024 * 1024, mode: 0o600})
    let settled = false
    return {
      async abort() {
        if (settled) return
        settled = true
        // The stream opens its file asynchronously: wait until it is closed, or the open could
        // land after the removal and leave the temp file behind.
        if (!stream.closed) {
          const closed = new Promise<void>((resolve) => {
            stream.once('close', () => resolve())
          })
          stream.destroy()
          await closed
        }

        await rm(temp, {force: true})
      },
      async commit() {
        if (settled) throw new Error(`writer for ${key} already settled`)
        settled = true
        if (!stream.writableFinished) {
          stream.end()
          await finished(stream)
        }

        await fsyncPath(temp)
        await rename(temp, target)
        await fsyncPath(dirname(target))
      },
      stream,
    }
  }

  async readBuffer(key: string, options: ReadOptions = {}): Promise<Buffer> {
    return readRegular(this.path(key), key, options.maxBytes ?? MAX_SMALL_OBJECT_BYTES)
  }

  async remove(key: string): Promise<void> {
    await rm(this.path(key), {force: true})
    await fsyncPath(dirname(this.path(key))).catch(() => {})
  }

  async removeIf(key: string, expected: Uint8Array): Promise<boolean> {
    const target = this.path(key)
    const aside = `${target}.removing-${randomBytes(6).toString('hex')}`
    try {
      await rename(target, aside)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
      throw error
    }

    // Bounded by what we expect: a bigger or special file there is not ours, and must not hang us.
    const found = await readRegular(aside, key, expected.length).catch(() => null)
    if (found && Buffer.from(expected).equals(found)) {
      await unlink(aside)
      await fsyncPath(dirname(target)).catch(() => {})
      return true
    }

    // Not what we meant to remove: put it back, unless someone created the key meanwhile (link
    // never overwrites; theirs is the newer object then).
    await link(aside, target).catch(() => {})
    await unlink(aside)
    return false
  }

  async removePrefix(prefix: string): Promise<void> {
    await rm(this.path(prefix), {force: true, recursive: true})
  }

  async size(key: string): Promise<null | number> {
    try {
      const info = await stat(this.path(key))
      // A FIFO or a directory where an object belongs is not "missing": say what it is.
      if (!info.isFile()) throw notRegular(key, info)
      return info.size
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw error
    }
  }

  async writeBuffer(key: string, bytes: Uint8Array): Promise<void> {
    const writer = await this.openWriter(key)
    try {
      writer.stream.end(bytes)
      await writer.commit()
    } catch (error) {
      await writer.abort()
      throw error
    }
  }

  private path(key: string): string {
    const path = resolve(this.root, ...key.split('/').filter(Boolean))
    if (path !== this.root && !path.startsWith(this.root + sep))
      throw new Error(`repository key ${key} escapes the repository`)
    return path
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

async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}
