/**
 * age's payload (C2SP age, "Payload"): HKDF-SHA-256 payload key from the file key and a 16-byte
 * nonce, then 64 KiB chunks sealed with ChaCha20-Poly1305 under an 11-byte big-endian counter and
 * a last-chunk flag, on node:crypto: several times faster than typage's pure-JS cipher.
 *
 * Guarantees: the encryptor writes header ‖ nonce ‖ chunks exactly as the spec says (`age -d`
 * reads it); the decryptor finds the header (age-header.ts opens it), then releases no plaintext
 * before its chunk authenticated, and fails as an integrity BrError on a chunk that does not, a
 * truncation (also one cut exactly at a chunk boundary), or an empty last chunk after others. It
 * does not tell a cut inside the last chunk from tampering: the caller's size check against the
 * record does that.
 */
import {hkdfSync} from 'node:crypto'
import {Transform, type TransformCallback} from 'node:stream'

import {BrError, integrityError} from '../errors.js'
import {open, seal, TAG} from './age-aead.js'
import {headerEnd, HINT_OTHER_COPY, NONCE, TAMPERED, TRUNCATED} from './age-header.js'

const CHUNK = 64 * 1024
const SEALED_CHUNK = CHUNK + TAG

/** HKDF-SHA-256(ikm = file key, salt = nonce, info = "payload"): the spec's payload key. */
export function payloadKey(fileKey: Uint8Array, nonce: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', fileKey, nonce, 'payload', 32))
}

/** STREAM nonce: an 11-byte big-endian chunk counter, then 1 for the last chunk, else 0. */
function chunkNonce(counter: number, last: boolean): Buffer {
  const nonce = Buffer.alloc(12)
  // 6 bytes of counter are 2^48 chunks of 64 KiB, far past any archive: the upper 5 stay zero.
  nonce.writeUIntBE(counter, 5, 6)
  nonce[11] = last ? 1 : 0
  return nonce
}

/**
 * Cuts a byte stream into fixed-size chunks without copying them, except across a write boundary.
 * A full chunk is only released once more bytes follow it: age flags the last chunk, and a
 * payload whose size is a multiple of the chunk size ends with a full last chunk.
 */
class Chunker {
  private filled = 0
  private readonly pending: Buffer

  constructor(private readonly size: number) {
    this.pending = Buffer.allocUnsafe(size)
  }

  /** Calls `emit` (which must use the bytes at once: they may be overwritten) for each chunk known not to be last. */
  feed(chunk: Buffer, emit: (bytes: Buffer) => void): void {
    let offset = 0
    if (this.filled > 0) {
      offset = Math.min(this.size - this.filled, chunk.length)
      chunk.copy(this.pending, this.filled, 0, offset)
      this.filled += offset
      if (offset === chunk.length) return
      emit(this.pending)
      this.filled = 0
    }

    while (chunk.length - offset > this.size) {
      emit(chunk.subarray(offset, offset + this.size))
      offset += this.size
    }

    this.filled = chunk.copy(this.pending, 0, offset)
  }

  /** What is held back: the last chunk, once the input has ended. */
  rest(): Buffer {
    return this.pending.subarray(0, this.filled)
  }
}

/** The payload writer: `prefix` (header ‖ nonce) first, then each 64 KiB chunk sealed as it completes, the last one flagged at the end. */
export class EncryptStream extends Transform {
  /**
   * told after each write how far into its input it is done with: every byte written so far is
   * sealed or copied, none is held (write.ts: the compressor fills those frames' buffers again)
   */
  doneWith?: (position: number) => void
  private readonly chunker = new Chunker(CHUNK)
  private counter = 0
  private taken = 0

  constructor(
    prefix: Buffer,
    private readonly key: Buffer,
  ) {
    super()
    this.push(prefix)
  }

  override _flush(callback: TransformCallback): void {
    for (const part of seal(this.key, chunkNonce(this.counter, true), this.chunker.rest())) this.push(part)
    callback()
  }

  override _transform(chunk: Buffer, _encoding: string, callback: TransformCallback): void {
    // Sealed pieces are pushed as they are: concatenating them would copy every byte once more.
    this.chunker.feed(chunk, (plaintext) => {
      for (const part of seal(this.key, chunkNonce(this.counter++, false), plaintext)) this.push(part)
    })
    this.taken += chunk.length
    this.doneWith?.(this.taken)
    callback()
  }
}

/**
 * The payload reader: finds the header, has `openHeader` give its file key (or fail with the
 * error to report), then opens chunk after chunk.
 */
export class DecryptStream extends Transform {
  private readonly chunker = new Chunker(SEALED_CHUNK)
  private counter = 0
  private head: Buffer = Buffer.alloc(0)
  private headerSize = 0
  private key: Buffer | undefined

  constructor(private readonly openHeader: (header: Buffer) => Promise<Uint8Array>) {
    super()
  }

  override _flush(callback: TransformCallback): void {
    const last = this.chunker.rest()
    if (!this.key || last.length < TAG) {
      callback(integrityError(TRUNCATED, HINT_OTHER_COPY))
      return
    }

    const plaintext = open(this.key, chunkNonce(this.counter, true), last)
    if (plaintext === null) {
      // Cut right after a full chunk, what is left opens as a middle chunk.
      const cutAtChunk = last.length === SEALED_CHUNK && open(this.key, chunkNonce(this.counter, false), last) !== null
      callback(
        cutAtChunk
          ? integrityError(TRUNCATED, HINT_OTHER_COPY)
          : integrityError(`${TAMPERED} (or truncated): its last chunk does not authenticate`, HINT_OTHER_COPY),
      )
      return
    }

    if (plaintext.length === 0 && this.counter > 0) {
      callback(integrityError(`${TAMPERED}: an empty last chunk`, HINT_OTHER_COPY))
      return
    }

    this.push(plaintext)
    callback()
  }

  override _transform(chunk: Buffer, _encoding: string, callback: TransformCallback): void {
    if (this.key) {
      this.payload(chunk, callback)
      return
    }

    this.head = this.head.length > 0 ? Buffer.concat([this.head, chunk]) : Buffer.from(chunk)
    const end = headerEnd(this.head)
    if (end instanceof BrError) {
      callback(end)
      return
    }

    if (end === -1 || this.head.length < end + NONCE) {
      callback()
      return
    }

    const header = this.head.subarray(0, end)
    const nonce = this.head.subarray(end, end + NONCE)
    this.openHeader(header).then(
      (fileKey) => {
        this.key = payloadKey(fileKey, nonce)
        this.headerSize = end + NONCE
        const rest = this.head.subarray(end + NONCE)
        this.head = Buffer.alloc(0)
        this.payload(rest, callback)
      },
      (error: unknown) => callback(error as Error),
    )
  }

  private payload(chunk: Buffer, callback: TransformCallback): void {
    const key = this.key!
    let failed: BrError | undefined
    this.chunker.feed(chunk, (sealed) => {
      if (failed) return
      const plaintext = open(key, chunkNonce(this.counter, false), sealed)
      if (plaintext === null) {
        const at = this.headerSize + this.counter * SEALED_CHUNK
        failed = integrityError(
          `${TAMPERED}: chunk ${this.counter} (at byte ${at}) does not authenticate`,
          HINT_OTHER_COPY,
        )
        return
      }

      this.counter++
      this.push(plaintext)
    })
    callback(failed)
  }
}
