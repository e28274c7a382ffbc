import type {Readable} from 'node:stream'

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
 */
import {randomBytes} from 'node:crypto'
import {createReadStream, createWriteStream} from 'node:fs'
import {link, mkdir, open, readdir, readFile, rename, rm, stat, unlink, writeFile} from 'node:fs/promises'
import {dirname, resolve, sep} from 'node:path'
import {finished} from 'node:stream/promises'

import type {AtomicWriter, RepoBackend} from './backend.js'

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
    return createReadStream(this.path(key), {highWaterMark: 1024 * 1024, signal: options.signal})
  }

  describe(): string {
    return `local directory ${this.root}`
  }

  async exists(key: string): Promise<boolean> {
    if ((await this.size(key)) !== null) return true
    return isDir(this.path(key))
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

  async readBuffer(key: string): Promise<Buffer> {
    return readFile(this.path(key))
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

    if (Buffer.from(expected).equals(await readFile(aside))) {
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
      return info.isFile() ? info.size : null
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

const tempName = (path: string) => `${path}.tmp-${randomBytes(6).toString('hex')}`

async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory()
  } catch {
    return false
  }
}
