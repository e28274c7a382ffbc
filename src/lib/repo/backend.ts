/**
 * Where a repository's objects live. Keys are '/'-separated paths relative to the repository
 * root ('backups/<id>/backup.json'). A local directory now (fs.ts); S3-compatible storage slots in
 * behind the same interface.
 *
 * Guarantees every backend must give: a write is atomic (readers see the whole object or none),
 * committed objects are durable when commit() returns, and abort() leaves nothing behind.
 * `createExclusive` and `removeIf` are the two conditional operations the repository lock is
 * built on (lock.ts): each is atomic against any other writer of the same key.
 *
 * Reads never trust what is at a key: whoever can write the repository can put a FIFO, a socket,
 * a device or a directory there, or a file of any size. `readBuffer` and `createReadStream` fail
 * (integrity, exit 3) on anything but a regular file, checked on the opened handle, and
 * `readBuffer` refuses an object larger than its bound before reading a byte of it.
 */
import type {Readable, Writable} from 'node:stream'

/** The bound of `readBuffer` unless told otherwise: records, the lock, moctl-br.json. */
export const MAX_SMALL_OBJECT_BYTES = 1024 * 1024
/** No manifest is read into memory beyond this, whatever its record says (about 2.5 million files). */
export const MAX_MANIFEST_BYTES = 512 * 1024 * 1024

export interface ReadOptions {
  /** refuse (integrity error) an object larger than this, before reading it; default MAX_SMALL_OBJECT_BYTES */
  maxBytes?: number
}

export interface AtomicWriter {
  abort(): Promise<void>
  commit(): Promise<void>
  stream: Writable
}

export interface RepoBackend {
  /**
   * Creates the object only if no object has this key: true when created (whole and durable),
   * false when one already exists. Two concurrent calls never both return true.
   */
  createExclusive(key: string, bytes: Uint8Array): Promise<boolean>
  createReadStream(key: string, options?: {signal?: AbortSignal}): Readable
  describe(): string
  exists(key: string): Promise<boolean>
  /** names of the immediate children of a prefix ('' for the root), sorted */
  list(prefix: string): Promise<string[]>
  openWriter(key: string): Promise<AtomicWriter>
  /** the whole object, if it is a regular file of at most `maxBytes` */
  readBuffer(key: string, options?: ReadOptions): Promise<Buffer>
  remove(key: string): Promise<void>
  /**
   * Removes the object only if it still holds exactly `expected`: true when removed, false when it
   * is gone or holds something else (which is left in place).
   */
  removeIf(key: string, expected: Uint8Array): Promise<boolean>
  removePrefix(prefix: string): Promise<void>
  /** size in bytes, or null when there is no such object */
  size(key: string): Promise<null | number>
  writeBuffer(key: string, bytes: Uint8Array): Promise<void>
}
