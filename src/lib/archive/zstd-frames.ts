/**
 * Splits a zstd stream into its frames by their headers (RFC 8878), without decompressing, so
 * that independent frames can be decompressed in parallel (zstd-parallel.ts).
 *
 * Guarantees: a frame whose header declares a Frame_Content_Size up to `maxPooled` comes out
 * whole, as one buffer of its own (never a slice of a shared pool: it may be transferred to a
 * worker), with that size; its compressed bytes are bounded too (a frame bigger than its content
 * can need is refused), so a forged header cannot make it hold more. Every other frame (no
 * content size, a larger one: every archive written before the many-frame format is one such
 * frame) comes out as pieces in stream order, cut so that no piece can decompress to much more
 * than `budget` (a block header tells the most its block gives: its size for raw and RLE blocks,
 * 128 KiB for a compressed one); such pieces go to a streaming decoder. Skippable frames are
 * dropped. Refused, with an Error whose message starts "corrupt zstd data" or names the window:
 * a bad magic, a reserved bit or block type, a block over 128 KiB, a window over
 * 2^maxWindowLog. `atFrameBoundary` says whether the input stopped between frames. It does not
 * check that a frame's content matches its declared size (the decompressor does) nor checksums.
 */

/* eslint-disable no-bitwise -- zstd headers are bit fields */

/** zstd's largest block, decompressed (RFC 8878 Block_Maximum_Size). */
const BLOCK_MAX = 128 * 1024
/** Sizes of a frame header's Dictionary_ID and Frame_Content_Size fields, by their flags. */
const DID_SIZES = [0, 1, 2, 4]
const FCS_SIZES = [0, 2, 4, 8]
const ZSTD_MAGIC = 0xfd_2f_b5_28
const SKIPPABLE_MAGIC = 0x18_4d_2a_50
/** Frame header (at most 18 bytes with magic) and checksum: a frame's fixed overhead, with slack. */
const FRAME_OVERHEAD = 32

export type FramePiece =
  /** a whole frame with a declared content size of at most `maxPooled` */
  | {contentSize: number; data: Buffer; kind: 'frame'}
  /** bytes of frames for a streaming decoder, in order */
  | {data: Buffer; kind: 'stream'}

export interface FrameSplitterOptions {
  /** where a whole frame's bytes are gathered: a buffer of exactly `size` bytes (default: a new one) */
  allocate?: (size: number) => Buffer
  /** a piece of a streamed frame decompresses to at most about this (plus one block) */
  budget: number
  /** frames with a declared content size up to this come out whole; -1: none do */
  maxPooled: number
  maxWindowLog: number
}

type State = 'block' | 'descriptor' | 'header' | 'magic' | 'skipping' | 'skipSize'

export class FrameSplitter {
  /** after the current skip: 'block' (more blocks), 'magic' (next frame) */
  private after: 'block' | 'magic' = 'magic'
  private readonly allocate: (size: number) => Buffer
  private checksum = false
  private collected = 0
  /** this frame's declared content size, when it is pooled */
  private contentSize = 0
  private descriptor = 0
  /** the pooled frame's bytes so far (its header included) */
  private frameBytes = 0
  private frameParts: Buffer[] = []
  private readonly head = Buffer.alloc(16)
  /** header bytes of a frame whose kind is not known yet (they may span chunks) */
  private headParts: Buffer[] = []
  /** the current frame: pooled, streamed, skippable, or not known until its header is parsed */
  private mode: 'pool' | 'skip' | 'stream' | 'unknown' = 'unknown'
  /** predicted output since the last cut of streamed bytes */
  private owed = 0
  /** bytes still to pass over, in the skip states */
  private skip = 0
  private state: State = 'magic'
  private want = 4
  private window = 0

  constructor(private readonly options: FrameSplitterOptions) {
    this.allocate = options.allocate ?? ((size) => Buffer.allocUnsafeSlow(size))
  }

  get atFrameBoundary(): boolean {
    return this.state === 'magic' && this.collected === 0
  }

  /** The pieces that `chunk` completes, in order; throws on a frame this reader refuses. */
  push(chunk: Buffer): FramePiece[] {
    const out: FramePiece[] = []
    /** start of the streamed bytes of `chunk` not yet given out; -1: none */
    let runFrom = -1
    const flush = (to: number) => {
      if (runFrom >= 0 && to > runFrom) out.push({data: chunk.subarray(runFrom, to), kind: 'stream'})
      runFrom = -1
    }

    const belongs = (from: number, to: number) => {
      if (this.mode === 'pool') this.addFramePart(chunk.subarray(from, to))
      else if (this.mode === 'unknown') this.headParts.push(chunk.subarray(from, to))
      else if (this.mode === 'stream' && runFrom < 0) runFrom = from
    }

    let i = 0
    while (i < chunk.length) {
      if (this.state === 'skipping') {
        const n = Math.min(this.skip, chunk.length - i)
        belongs(i, i + n)
        i += n
        this.skip -= n
        if (this.skip === 0) this.endSkip(out, () => flush(i))
        continue
      }

      if (this.state === 'magic' && this.collected === 0) {
        this.mode = 'unknown'
        this.headParts = []
      }

      const n = Math.min(this.want - this.collected, chunk.length - i)
      const start = i - this.collected // where this header began; negative: in an earlier chunk
      chunk.copy(this.head, this.collected, i, i + n)
      belongs(i, i + n)
      this.collected += n
      i += n
      if (this.collected < this.want) continue
      this.collected = 0
      const cost = this.parse()
      if (this.mode !== 'unknown' && this.headParts.length > 0) {
        // The header just told what the frame is: its bytes so far are the frame's or the stream's.
        for (const part of this.headParts) {
          if (this.mode === 'pool') this.addFramePart(part)
          else if (this.mode === 'stream') out.push({data: part, kind: 'stream'})
        }

        this.headParts = []
      }

      if (this.mode === 'stream' && cost > 0) {
        if (this.owed > 0 && this.owed + cost > this.options.budget) {
          if (start > 0 && runFrom >= 0 && start > runFrom) {
            flush(start)
            runFrom = start
          }

          this.owed = 0
        }

        this.owed += cost
      }

      if (this.skipDone()) this.endSkip(out, () => flush(i))
    }

    if (this.mode === 'stream') flush(chunk.length)
    return out
  }

  private addFramePart(part: Buffer): void {
    if (part.length === 0) return
    this.frameParts.push(part)
    this.frameBytes += part.length
    // zstd's encoder never writes more than a raw block (3-byte header) per 128 KiB of content.
    const most = this.contentSize + FRAME_OVERHEAD + Math.ceil(this.contentSize / BLOCK_MAX + 1) * 3
    if (this.frameBytes > most) {
      throw new Error(
        `corrupt zstd data: a frame declaring ${this.contentSize} bytes of content is larger than that content can need`,
      )
    }
  }

  /** A skip ended: the next block, or the end of the frame (a pooled one is given out whole). */
  private endSkip(out: FramePiece[], flush: () => void): void {
    if (this.after === 'magic') {
      if (this.mode === 'pool') {
        const data = this.allocate(this.frameBytes)
        let at = 0
        for (const part of this.frameParts) at += part.copy(data, at)
        out.push({contentSize: this.contentSize, data, kind: 'frame'})
        this.frameParts = []
        this.frameBytes = 0
      } else if (this.mode === 'stream') {
        flush()
      }

      this.mode = 'unknown'
    }

    this.expect(this.after, this.after === 'block' ? 3 : 4)
  }

  private expect(state: State, want: number): void {
    this.state = state
    this.want = want
    this.collected = 0
  }

  /** Takes the header just collected; returns the most output the block it starts can give. */
  private parse(): number {
    switch (this.state) {
      case 'block': {
        return this.parseBlock()
      }

      case 'descriptor': {
        const d = this.head[0]
        if ((d >> 3) & 1) throw new Error('corrupt zstd data: reserved bit set in a frame header')
        this.descriptor = d
        this.checksum = ((d >> 2) & 1) === 1
        const single = (d >> 5) & 1
        const fcsFlag = d >> 6
        this.expect('header', (single ? 0 : 1) + DID_SIZES[d & 3] + (fcsFlag === 0 ? single : FCS_SIZES[fcsFlag]))
        return 0
      }

      case 'header': {
        this.parseHeader()
        this.expect('block', 3)
        return 0
      }

      case 'magic': {
        const magic = this.head.readUInt32LE(0)
        if (magic === ZSTD_MAGIC) {
          this.expect('descriptor', 1)
        } else if ((magic & 0xff_ff_ff_f0) >>> 0 === SKIPPABLE_MAGIC) {
          this.mode = 'skip'
          this.expect('skipSize', 4)
        } else {
          throw new Error('corrupt zstd data: not a zstd frame')
        }

        return 0
      }

      case 'skipping': {
        return 0
      }

      case 'skipSize': {
        this.skipThen(this.head.readUInt32LE(0), 'magic')
        return 0
      }
    }
  }

  private parseBlock(): number {
    const {head} = this
    const v = head[0] | (head[1] << 8) | (head[2] << 16)
    const last = (v & 1) === 1
    const type = (v >> 1) & 3
    const size = v >>> 3
    if (type === 3) throw new Error('corrupt zstd data: reserved block type')
    if (size > BLOCK_MAX) throw new Error(`corrupt zstd data: a block of ${size} bytes`)
    this.skipThen((type === 1 ? 1 : size) + (last && this.checksum ? 4 : 0), last ? 'magic' : 'block')
    return type === 2 ? Math.min(BLOCK_MAX, this.window) : size
  }

  /** The frame's window and content size; decides whether the frame is pooled. */
  private parseHeader(): void {
    const {descriptor: d, head} = this
    const fcsFlag = d >> 6
    const single = (d >> 5) & 1
    const at = (single ? 0 : 1) + DID_SIZES[d & 3]
    let contentSize: number | undefined
    switch (fcsFlag) {
      case 0: {
        contentSize = single ? head[at] : undefined
        break
      }

      case 1: {
        contentSize = head.readUInt16LE(at) + 256
        break
      }

      case 2: {
        contentSize = head.readUInt32LE(at)
        break
      }

      default: {
        contentSize = Number(head.readBigUInt64LE(at))
      }
    }

    if (single) {
      this.window = contentSize ?? 0
    } else {
      const base = 2 ** (10 + (head[0] >> 3))
      this.window = base + (base / 8) * (head[0] & 7)
    }

    if (this.window > 2 ** this.options.maxWindowLog) {
      throw new Error(
        `a zstd frame asks for a ${Math.ceil(this.window / 2 ** 20)} MiB window, more than the ${2 ** (this.options.maxWindowLog - 20)} MiB this reader allows`,
      )
    }

    if (contentSize !== undefined && contentSize <= this.options.maxPooled) {
      this.mode = 'pool'
      this.contentSize = contentSize
    } else {
      this.mode = 'stream'
    }
  }

  private skipDone(): boolean {
    return this.state === 'skipping' && this.skip === 0
  }

  private skipThen(bytes: number, after: 'block' | 'magic'): void {
    this.skip = bytes
    this.after = after
    this.state = 'skipping'
  }
}

/* eslint-enable no-bitwise */
