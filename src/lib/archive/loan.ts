/**
 * Output buffers lent to a stream's reader and taken back: a stream that fills whole buffers on
 * worker threads (zstd-parallel.ts, zstd-pool.ts) pushes views of them, and its reader says how
 * far in the output it is done with the bytes (`doneWith(position)`: copied or dropped, with no
 * view of them left anywhere, the streams between included). The buffers that end there are
 * filled again. A new buffer costs a page fault per 4 KiB page the first time it is written, and
 * glibc unmaps freed buffers of this size: on this VM a fault is several microseconds, and verify
 * of the 1 GiB set spent about 2.5 CPU-s of its 7.5 on it (4.8 reusing its buffers).
 *
 * Guarantees: a buffer is filled again only once the reader is done with every byte of it, and
 * it is detached when handed out again (`take`), so that a view a reader kept against its word
 * reads as empty, never as another frame's bytes; but for a `shared` loan's buffers
 * (SharedArrayBuffer, read-worker.ts: one worker writes and reads them in place), which cannot be
 * detached: a view kept against its word there reads the next frame. At most `keep` buffers wait
 * to be reused. The buffers tracked for a reader that has not said it is done with them are at
 * most MAX_LENT and MAX_LENT_BYTES (the oldest are forgotten, left to the garbage collector): a
 * reader that never calls doneWith, or a tar whose tail it never reports (a manifest, zero
 * blocks), pins no more.
 */

/** Buffers tracked until the reader is done with them, at most (the oldest is forgotten). */
const MAX_LENT = 64
/** Bytes of buffers tracked until the reader is done with them, at most (one always may). */
const MAX_LENT_BYTES = 64 * 1024 * 1024
/** The smallest buffer made (sizeClass). */
export const MIN_BUFFER = 64 * 1024

/** The power of two at or above `size`, MIN_BUFFER at least: buffers of frames of about one size find each other. */
export function sizeClass(size: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(size, MIN_BUFFER)))
}

export class BufferLoan {
  /** buffers handed out again (tests) */
  reused = 0
  /** buffers pushed and not yet done with, in order: where each one's bytes end in the output */
  private readonly lent: Array<{buffer: ArrayBufferLike; end: number}> = []
  /** bytes of the buffers in `lent` */
  private lentBytes = 0
  private readonly spare: ArrayBufferLike[] = []
  /** bytes pushed so far: the position in the output */
  private written = 0

  /**
   * @param keep buffers kept for reuse, at most
   * @param shared the buffers are SharedArrayBuffers, handed out again as they are
   */
  constructor(
    private readonly keep: number,
    private readonly shared = false,
  ) {}

  /** Bytes of the buffers lent and not yet done with (tests). */
  get lentNow(): number {
    return this.lentBytes
  }

  /** Forgets every buffer (the stream ended or was destroyed). */
  clear(): void {
    this.lent.length = 0
    this.lentBytes = 0
    this.spare.length = 0
  }

  /** The reader is done with every byte before `position`: the buffers that end there can be filled again. */
  doneWith(position: number): void {
    while (this.lent.length > 0 && this.lent[0].end <= position) {
      const {buffer} = this.lent.shift()!
      this.lentBytes -= buffer.byteLength
      this.giveBack(buffer)
    }
  }

  /** A buffer from `take` that was not lent after all (its bytes were copied out): kept for reuse. */
  giveBack(buffer: ArrayBufferLike): void {
    // A detached buffer (byteLength 0) went to a worker some other way: not ours to reuse.
    if (this.spare.length < this.keep && buffer.byteLength > 0) this.spare.push(buffer)
  }

  /**
   * `output` is pushed next: its bytes end at the position so far plus its length. `lend`: it is
   * a view of a buffer from `take`, to be filled again once the reader is done with it; otherwise
   * it only moves the position on.
   */
  pushed(output: Uint8Array, lend: boolean): void {
    this.written += output.length
    if (!lend) return
    const {buffer} = output
    this.lent.push({buffer, end: this.written})
    this.lentBytes += buffer.byteLength
    while (this.lent.length > MAX_LENT || (this.lent.length > 1 && this.lentBytes > MAX_LENT_BYTES)) {
      this.lentBytes -= this.lent.shift()!.buffer.byteLength
    }
  }

  /**
   * A buffer of at least `size` bytes: one done with (up to four times as large), detached from
   * every view of it, else a new one of max(size, capacity) bytes.
   */
  take(size: number, capacity = sizeClass(size)): ArrayBufferLike {
    const most = 4 * Math.max(size, MIN_BUFFER)
    const at = this.spare.findIndex((b) => b.byteLength >= size && b.byteLength <= most)
    if (at === -1) {
      const bytes = Math.max(size, capacity)
      return this.shared ? new SharedArrayBuffer(bytes) : Buffer.allocUnsafeSlow(bytes).buffer
    }

    this.reused++
    const [buffer] = this.spare.splice(at, 1)
    if (buffer instanceof SharedArrayBuffer) return buffer
    // The same memory under a new ArrayBuffer, no copy: views of the old one read as empty.
    return structuredClone(buffer, {transfer: [buffer as ArrayBuffer]})
  }
}
