/**
 * Taps that hash (SHA-256) and count the bytes flowing past, without changing them: `HashTap`,
 * a stream stage, for the stored archive (its checksum and size on the write side, their check
 * against the record on the read side); `FileTap`, for one file's chunks on their way from the
 * data dir into the tar (the manifest's sha256 of each file).
 *
 * Guarantees: bytes pass unchanged and in order; with `expected`, the stream fails with an
 * integrity error as soon as more bytes than expected arrive, and at the end when fewer did or the
 * hash differs, so a truncated or replaced archive is named as such before any later stage can
 * blame its symptoms. A FileTap's digest covers exactly the chunks its consumer took.
 */
import {createHash, type Hash} from 'node:crypto'
import {Transform, type TransformCallback} from 'node:stream'

import {integrityError} from '../errors.js'

export interface Expected {
  sha256: string
  size: number
}

export interface HashTapOptions {
  expected?: Expected
}

export class HashTap extends Transform {
  bytes = 0
  private digest: string | undefined
  private readonly expected: Expected | undefined
  private readonly hash = createHash('sha256')

  constructor(options: HashTapOptions = {}) {
    super()
    this.expected = options.expected
  }

  /** The SHA-256 (hex) of everything that passed; only once the stream has ended. */
  get sha256(): string {
    if (this.digest === undefined) throw new Error('HashTap: sha256 read before the end of the stream')
    return this.digest
  }

  override _flush(callback: TransformCallback): void {
    this.digest = this.hash.digest('hex')
    const {expected} = this
    if (expected && this.bytes < expected.size) {
      callback(
        integrityError(
          `archive is truncated: ${this.bytes} bytes, its record says ${expected.size}`,
          'the stored copy is damaged: use another copy or another backup',
        ),
      )
      return
    }

    if (expected && this.digest !== expected.sha256) {
      callback(
        integrityError(
          'archive does not match the SHA-256 in its record',
          'the stored copy is damaged or was replaced: use another copy or another backup',
        ),
      )
      return
    }

    callback()
  }

  override _transform(chunk: Buffer, _encoding: string, callback: TransformCallback): void {
    this.hash.update(chunk)
    this.bytes += chunk.length
    if (this.expected && this.bytes > this.expected.size) {
      callback(
        integrityError(
          `archive is larger than its record says (${this.expected.size} bytes)`,
          'the stored copy was replaced or appended to: use another copy or another backup',
        ),
      )
      return
    }

    callback(null, chunk)
  }
}

/**
 * One file's chunks, hashed as they pass: the packer takes `chunks`, the manifest gets `sha256()`
 * once they are all taken. A generator stage, not a stream: a chunk costs one hash update and no
 * buffering (measured: packing runs as fast as with the hash inside the tar writer).
 */
export class FileTap {
  private readonly hash = createHash('sha256')

  /**
   * @param onBytes told each chunk's length once it is taken
   * @param also another hash the chunks go into (a file that grew: the whole file's, begun over
   *   the bytes before them)
   */
  constructor(
    private readonly onBytes?: (n: number) => void,
    private readonly also?: Hash,
  ) {}

  /**
   * The chunks of an async `source` (a stream from elsewhere), unchanged.
   * @yields each chunk, once hashed
   */
  async *asyncChunks(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      this.hash.update(chunk)
      this.also?.update(chunk)
      yield chunk
      this.onBytes?.(chunk.length)
    }
  }

  /**
   * The chunks of `source`, unchanged.
   * @yields each chunk, once hashed
   */
  *chunks(source: Iterable<Buffer>): Generator<Buffer> {
    for (const chunk of source) {
      this.hash.update(chunk)
      this.also?.update(chunk)
      yield chunk
      this.onBytes?.(chunk.length)
    }
  }

  /** The SHA-256 (hex) of the chunks taken; call once, after the last. */
  sha256(): string {
    return this.hash.digest('hex')
  }
}
