/**
 * Where a repository's objects live. Keys are '/'-separated paths relative to the repository
 * root ('backups/<id>/backup.json'). A local directory now (fs.ts); S3-compatible storage slots in
 * behind the same interface.
 *
 * Guarantees every backend must give: a write is atomic (readers see the whole object or none),
 * committed objects are durable when commit() returns, and abort() leaves nothing behind.
 * `createExclusive` and `removeIf` are the two conditional operations the repository lock is
 * built on (lock.ts): each is atomic against any other writer of the same key.
 */
import type {Readable, Writable} from 'node:stream'

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
  readBuffer(key: string): Promise<Buffer>
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
