/**
 * The two on-disk forms of a file MatrixOne writes, and a streaming hasher that reads either.
 *
 * MO writes through its fileservice. Its legacy local backend (`DISK`, `LocalFS` without
 * `noChecksum`) frames every file in 2048-byte blocks: a 4-byte little-endian CRC-32C
 * (Castagnoli) of the block's content, then up to 2044 bytes of content; the last block is
 * shorter. The `DISK-V2` backend and the ETL fileservice write the bytes as they are. A BACKUP
 * folder holds both: `mo_meta` and `config/` go through the ETL fileservice (raw), `tae/` and
 * `hakeeper/` through `GetForBackup`, i.e. a `LocalFS` (framed unless the server runs DISK-V2).
 * The SHA-256 MO records (a `.sha256` sidecar or a `tae_list` column) is always of the content,
 * never of the frames. Sources: matrixone pkg/fileservice/file_with_checksum.go (`_ChecksumSize`,
 * `_BlockContentSize = 2048 - _ChecksumSize`, `crc32.Castagnoli`), pkg/fileservice/local_fs.go
 * (`noChecksum`: "stores files as raw bytes (no per-2KB-block CRC32 framing) ... Selected by the
 * DISK-V2 backend"), pkg/backup/fs.go (`setupFileservice`: `GetForETL` vs `GetForBackup`).
 *
 * Converting between the two (restore into a target whose SHARED backend differs from the
 * backup's): FramingStream adds frames (DISK-V2 -> DISK), UnframingStream strips them checking
 * every block's CRC (DISK -> DISK-V2); a bad CRC is an `integrity` BrError naming the file and
 * the block. pkg/fileservice/local_fs.go `checkNotCRCFramed` is why a framed file must never be
 * left in a DISK-V2 directory.
 *
 * Guarantees: one pass over the bytes, constant memory (one partial block is carried between
 * chunks); a file counts as framed only if every block's CRC holds, so a raw file is never
 * mistaken for a framed one unless its first 4 bytes happen to be the CRC-32C of the next 2044
 * (one chance in 2^32), and even then both digests are offered.
 * Not: a reader of MO objects.
 */
import {createHash, type Hash} from 'node:crypto'
import {Transform, type TransformCallback} from 'node:stream'

import {integrityError} from '../errors.js'

/** on-disk size of one frame: CRC + content */
export const FRAME_BLOCK_SIZE = 2048
export const FRAME_CHECKSUM_SIZE = 4
export const FRAME_CONTENT_SIZE = FRAME_BLOCK_SIZE - FRAME_CHECKSUM_SIZE

/* eslint-disable no-bitwise -- CRC-32C is bit arithmetic */
/** slicing-by-8 tables: table k at [256k, 256k+256) (about 5x faster than one byte at a time) */
const CRC32C_TABLES = (() => {
  const tables = new Uint32Array(8 * 256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82_f6_3b_78 ^ (c >>> 1) : c >>> 1
    tables[n] = c >>> 0
  }

  for (let n = 0; n < 256; n++) {
    for (let k = 1; k < 8; k++) {
      const previous = tables[(k - 1) * 256 + n]
      tables[k * 256 + n] = (tables[previous & 0xff] ^ (previous >>> 8)) >>> 0
    }
  }

  return tables
})()

/** CRC-32C (Castagnoli), as Go's `crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))`. */
export function crc32c(bytes: Uint8Array): number {
  const t = CRC32C_TABLES
  let crc = 0xff_ff_ff_ff
  let i = 0
  for (const end = bytes.length - 8; i <= end; i += 8) {
    const low = crc ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24))
    crc =
      t[7 * 256 + (low & 0xff)] ^
      t[6 * 256 + ((low >>> 8) & 0xff)] ^
      t[5 * 256 + ((low >>> 16) & 0xff)] ^
      t[4 * 256 + (low >>> 24)] ^
      t[3 * 256 + bytes[i + 4]] ^
      t[2 * 256 + bytes[i + 5]] ^
      t[256 + bytes[i + 6]] ^
      t[bytes[i + 7]]
  }

  for (; i < bytes.length; i++) crc = t[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8)
  return (crc ^ 0xff_ff_ff_ff) >>> 0
}
/* eslint-enable no-bitwise */

/** One frame is valid when its first 4 bytes are the CRC-32C of the rest. */
function frameIsValid(block: Uint8Array): boolean {
  if (block.length <= FRAME_CHECKSUM_SIZE) return false
  const view = new DataView(block.buffer, block.byteOffset, FRAME_CHECKSUM_SIZE)
  return view.getUint32(0, true) === crc32c(block.subarray(FRAME_CHECKSUM_SIZE))
}

export interface ContentDigest {
  sha256: Buffer
  size: number
}

export interface MoFileDigest {
  /** the content read through the CRC frames; null when the file is not (validly) framed */
  framed: ContentDigest | null
  /** the bytes as they are on disk */
  raw: ContentDigest
}

/** Hashes a file's bytes as they stream past, both as they are and read through CRC frames. */
export class MoFileHasher {
  private carry: Buffer = Buffer.alloc(0)
  private content: Hash | null = createHash('sha256')
  private contentSize = 0
  private raw = createHash('sha256')
  private rawSize = 0

  digest(): MoFileDigest {
    if (this.content && this.carry.length > 0) this.frame(this.carry)
    const raw = {sha256: this.raw.digest(), size: this.rawSize}
    const framed = this.content ? {sha256: this.content.digest(), size: this.contentSize} : null
    return {framed, raw}
  }

  update(chunk: Buffer): void {
    this.raw.update(chunk)
    this.rawSize += chunk.length
    if (!this.content) return
    let offset = 0
    if (this.carry.length > 0) {
      const take = Math.min(FRAME_BLOCK_SIZE - this.carry.length, chunk.length)
      this.carry = Buffer.concat([this.carry, chunk.subarray(0, take)])
      offset = take
      if (this.carry.length < FRAME_BLOCK_SIZE) return
      this.frame(this.carry)
      this.carry = Buffer.alloc(0)
    }

    while (this.content && chunk.length - offset >= FRAME_BLOCK_SIZE) {
      this.frame(chunk.subarray(offset, offset + FRAME_BLOCK_SIZE))
      offset += FRAME_BLOCK_SIZE
    }

    // copied: the stream may reuse the chunk's memory for the next read
    if (this.content && offset < chunk.length) this.carry = Buffer.from(chunk.subarray(offset))
  }

  private frame(block: Buffer): void {
    if (!this.content) return
    if (!frameIsValid(block)) {
      this.content = null
      return
    }

    this.content.update(block.subarray(FRAME_CHECKSUM_SIZE))
    this.contentSize += block.length - FRAME_CHECKSUM_SIZE
  }
}

/** The digests of a whole buffer (for small files already in memory). */
export function digestBytes(bytes: Buffer): MoFileDigest {
  const hasher = new MoFileHasher()
  hasher.update(bytes)
  return hasher.digest()
}

/** Which form of the file has the expected SHA-256: 'raw', 'framed', or null for neither. */
export function matchingForm(digest: MoFileDigest, expected: Buffer): 'framed' | 'raw' | null {
  if (digest.raw.sha256.equals(expected)) return 'raw'
  if (digest.framed?.sha256.equals(expected)) return 'framed'
  return null
}

/** The content of a framed buffer, or null when it is not validly framed. */
export function unframe(bytes: Buffer): Buffer | null {
  const parts: Buffer[] = []
  for (let offset = 0; offset < bytes.length; offset += FRAME_BLOCK_SIZE) {
    const block = bytes.subarray(offset, offset + FRAME_BLOCK_SIZE)
    if (!frameIsValid(block)) return null
    parts.push(block.subarray(FRAME_CHECKSUM_SIZE))
  }

  return Buffer.concat(parts)
}

/**
 * The 32-byte digest a `.sha256` sidecar holds, or null when the sidecar is neither the raw 32
 * bytes (DISK-V2, ETL) nor one valid 36-byte frame around them (legacy DISK).
 */
export function sidecarDigest(bytes: Buffer): Buffer | null {
  if (bytes.length === 32) return bytes
  if (bytes.length === 32 + FRAME_CHECKSUM_SIZE) return unframe(bytes)
  return null
}

/** Frames content the way MO's legacy DISK backend does; for tests and fixtures. */
export function frame(content: Buffer): Buffer {
  const parts: Buffer[] = []
  for (let offset = 0; offset < content.length; offset += FRAME_CONTENT_SIZE) {
    const part = content.subarray(offset, offset + FRAME_CONTENT_SIZE)
    const crc = Buffer.alloc(FRAME_CHECKSUM_SIZE)
    crc.writeUInt32LE(crc32c(part))
    parts.push(crc, part)
  }

  return Buffer.concat(parts)
}

/**
 * Cuts a stream into blocks of `size` bytes (the last one shorter), carrying at most one partial
 * block between chunks; the blocks of one chunk are written into one output buffer, pushed once.
 */
abstract class BlockStream extends Transform {
  private carry: Buffer = Buffer.alloc(0)
  private index = 0

  constructor(
    private readonly size: number,
    /** output bytes per input block */
    private readonly outSize: number,
  ) {
    super()
  }

  override _flush(callback: TransformCallback): void {
    try {
      if (this.carry.length > 0) this.push(this.convert([this.carry]))
      callback()
    } catch (error) {
      callback(error as Error)
    }
  }

  override _transform(chunk: Buffer, _encoding: string, callback: TransformCallback): void {
    try {
      const blocks: Buffer[] = []
      let offset = 0
      if (this.carry.length > 0) {
        const take = Math.min(this.size - this.carry.length, chunk.length)
        this.carry = Buffer.concat([this.carry, chunk.subarray(0, take)])
        offset = take
        if (this.carry.length < this.size) {
          callback()
          return
        }

        blocks.push(this.carry)
        this.carry = Buffer.alloc(0)
      }

      for (; chunk.length - offset >= this.size; offset += this.size)
        blocks.push(chunk.subarray(offset, offset + this.size))
      // copied: the source may reuse the chunk's memory for its next read
      if (offset < chunk.length) this.carry = Buffer.from(chunk.subarray(offset))
      if (blocks.length > 0) this.push(this.convert(blocks))
      callback()
    } catch (error) {
      callback(error as Error)
    }
  }

  /** writes one block's output at `at` in `out` and returns its length */
  protected abstract block(block: Buffer, index: number, out: Buffer, at: number): number

  private convert(blocks: Buffer[]): Buffer {
    const out = Buffer.allocUnsafe(blocks.length * this.outSize)
    let at = 0
    for (const block of blocks) at += this.block(block, this.index++, out, at)
    return out.subarray(0, at)
  }
}

/** Content in, DISK frames out (DISK-V2 -> DISK). */
export class FramingStream extends BlockStream {
  constructor() {
    super(FRAME_CONTENT_SIZE, FRAME_BLOCK_SIZE)
  }

  protected block(block: Buffer, _index: number, out: Buffer, at: number): number {
    out.writeUInt32LE(crc32c(block), at)
    block.copy(out, at + FRAME_CHECKSUM_SIZE)
    return FRAME_CHECKSUM_SIZE + block.length
  }
}

/** DISK frames in, content out (DISK -> DISK-V2); every block's CRC is checked. */
export class UnframingStream extends BlockStream {
  /** @param label names the file in the error a bad block raises */
  constructor(private readonly label: string) {
    super(FRAME_BLOCK_SIZE, FRAME_CONTENT_SIZE)
  }

  protected block(block: Buffer, index: number, out: Buffer, at: number): number {
    if (!frameIsValid(block)) {
      const start = index * FRAME_BLOCK_SIZE
      throw integrityError(
        `${this.label}: CRC-32C frame ${index} (bytes ${start}-${start + block.length - 1}) does not hold: the file is damaged or not DISK-framed`,
        'the backup is damaged: verify it (`moctl br verify`) and restore another backup',
      )
    }

    return block.copy(out, at, FRAME_CHECKSUM_SIZE)
  }
}
