/**
 * Where a repository's objects live: a store of named objects with no directory meaning, as
 * restic's Backend is. Keys are '/'-separated names ('backups/<id>/backup.json'); a prefix is just
 * the start of a name. A local directory now (fs.ts); S3-compatible storage slots in behind the
 * same interface, and test/contract/backend.ts is the contract every backend passes.
 *
 * Guarantees every backend gives:
 * - `save` is atomic: readers see the whole object or none, also when the writer is killed; what
 *   a killed writer leaves is never listed nor loadable (only `listLeftovers` and `removePrefix`
 *   see it). A saved object is durable when `save` resolves.
 * - a missing object is an error with `code: 'ENOENT'` from `load` and `open`, null from `stat`,
 *   and no error from `remove`.
 * - `createExclusive` and `removeIf` are the two conditional operations the locks are built on
 *   (lock.ts, datadir-lock.ts): each is atomic against any other writer of the same key.
 * - reads never trust what is at a key: whoever can write the repository can put a FIFO, a
 *   socket, a device or a directory there, or an object of any size. `load`, `open` and `stat`
 *   fail (integrity, exit 3) on anything but a regular object, and `load` refuses an object larger
 *   than its bound before reading a byte of it.
 * Not: locking. Two writers of one key race (the last save wins); writers take lock.ts's lock.
 */
import type {Readable} from 'node:stream'

/** The bound of `load` unless told otherwise: records, the lock, moctl-br.json. */
export const MAX_SMALL_OBJECT_BYTES = 1024 * 1024
/** No manifest is read into memory beyond this, whatever its record says (about 2.5 million files). */
export const MAX_MANIFEST_BYTES = 512 * 1024 * 1024
/**
 * A removal marker (removeIf's turn-taking, in every backend) older than this belongs to a
 * remover that died between its marker and its removal: removal takes a moment, so 5 minutes
 * is generous even for a clock skew between hosts.
 */
export const STALE_REMOVAL_MS = 5 * 60_000

export interface LoadOptions {
  /** refuse (integrity error) an object larger than this, before reading it; default MAX_SMALL_OBJECT_BYTES */
  maxBytes?: number
}

export interface ObjectInfo {
  /**
   * The checksum the store keeps of the object (S3: `sha256:<base64>` of a single PUT,
   * `sha256:<base64>-<N>` of an N-part upload, see SavedObject); absent when the store keeps
   * none or the backend has no store checksums. Only `stat` reports it.
   */
  checksum?: string
  key: string
  /** when it was last written, ms since the epoch */
  modifiedMs: number
  /**
   * When the store's retention (S3 Object Lock) on the object ends, ms since the epoch; absent
   * when it has none or the backend cannot tell. Only `stat` reports it.
   */
  retainUntilMs?: number
  size: number
}

/**
 * What `save` tells of the saved object. `checksum`: the checksum the store will report for
 * it on `stat`, computed by the backend from what it sent (absent on a backend without store
 * checksums, as the filesystem): verify --quick compares the two instead of reading the object.
 */
export interface SavedObject {
  checksum?: string
}

export interface RepoBackend {
  /** Makes sure the location can hold a repository; `exists` false when there is nothing there yet. */
  connect(): Promise<{exists: boolean}>
  /**
   * Creates the object only if no object has this key: true when created (whole and durable),
   * false when one already exists. Two concurrent calls never both return true.
   */
  createExclusive(key: string, bytes: Uint8Array): Promise<boolean>
  describe(): string
  /**
   * Every object whose key starts with `prefix`, sorted by key. Something that is not a regular
   * object (a FIFO) is listed too: reading it fails, so it is never mistaken for a missing one.
   * What unfinished saves left is not listed.
   */
  list(prefix: string): Promise<ObjectInfo[]>
  /** What unfinished or killed saves left under `prefix` (not objects): how old it is tells whether it may be removed. */
  listLeftovers(prefix: string): Promise<ObjectInfo[]>
  /** The whole object, if it is a regular object of at most `maxBytes`. */
  load(key: string, options?: LoadOptions): Promise<Buffer>
  /** The location as the user named it (--path): for messages. */
  readonly location: string
  /** The object as a stream, from byte `offset` (default 0) to its end. */
  open(key: string, options?: {offset?: number; signal?: AbortSignal}): Readable
  /** Removes the object; a missing one is no error. */
  remove(key: string): Promise<void>
  /**
   * Removes the object only if it still holds exactly `expected`: true when removed, false when it
   * is gone or holds something else (which is left in place).
   */
  removeIf(key: string, expected: Uint8Array): Promise<boolean>
  /** Removes every object, and every leftover, whose key starts with `prefix`. */
  removePrefix(prefix: string): Promise<void>
  /**
   * Saves the object atomically from bytes or a stream; an aborted or failed save leaves no
   * object. Resolves to the store's checksum of it, where the store keeps one.
   */
  save(key: string, source: Readable | Uint8Array, options?: {signal?: AbortSignal}): Promise<SavedObject>
  /**
   * The object's size and age (and the store's checksum, where it keeps one), or null when there
   * is none; a FIFO or a directory there is an integrity error.
   */
  stat(key: string): Promise<null | ObjectInfo>
}

/**
 * An object the store keeps under retention (S3 Object Lock) until `retainUntilMs`: `remove` and
 * `removePrefix` reject with this instead of hiding it behind a delete marker, so that prune and
 * delete can say what they cannot delete yet.
 */
export const RETAINED = 'ERETAINED'
export const isRetained = (error: unknown): error is Error & {retainUntilMs?: number} =>
  (error as NodeJS.ErrnoException)?.code === RETAINED

/** A missing object, as every backend reports it. */
export const isMissing = (error: unknown): boolean => (error as NodeJS.ErrnoException)?.code === 'ENOENT'
