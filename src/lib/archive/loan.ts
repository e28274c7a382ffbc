/**
 * Output buffers lent to a stream's reader and taken back: a stream that fills whole buffers on
 * worker threads (zstd-parallel.ts, zstd-pool.ts) pushes views of them, and its reader says how
 * far in the output it is done with the bytes (`doneWith(position)`: copied or dropped, with no
 * view of them left anywhere, the streams between included). The buffers that end there are
 * filled again. A new buffer costs a page fault per 4 KiB page the first time it is written, and
 * glibc unmaps freed buffers of this size: on this VM a fault is several microseconds, and verify
 * of the 1 GiB set spent about 2.5 CPU-s of its 7.5 on it (4.8 reusing its buffers).
 *
 * Guarantees: a buffer is filled again only once the reader is done with every byte of it; one
 * sent to a worker is detached here (transferred), so that a view a reader kept against its word
 * reads as empty, never as another frame's bytes. At most `keep` buffers wait to be reused, and
 * at most MAX_LENT are tracked: a reader that never calls doneWith costs no memory beyond that.
 */

/** Buffers tracked until the reader is done with them, at most (the oldest is forgotten). */
const MAX_LENT = 64
/** The smallest buffer made (sizeClass). */
const MIN_BUFFER = 64 * 1024

/** The power of two at or above `size`, MIN_BUFFER at least: buffers of frames of about one size find each other. */
export function sizeClass(size: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(size, MIN_BUFFER)))
}

export class BufferLoan {
  /** buffers handed out again (tests) */
  reused = 0
  /** buffers pushed and not yet done with, in order: where each one's bytes end in the output */
  private readonly lent: Array<{buffer: ArrayBuffer; end: number}> = []
  private readonly spare: ArrayBuffer[] = []
  /** bytes pushed so far: the position in the output */
  private written = 0

  /** @param keep buffers kept for reuse, at most */
  constructor(private readonly keep: number) {}

  /** Forgets every buffer (the stream was destroyed). */
  clear(): void {
    this.lent.length = 0
    this.spare.length = 0
  }

  /** The reader is done with every byte before `position`: the buffers that end there can be filled again. */
  doneWith(position: number): void {
    while (this.lent.length > 0 && this.lent[0].end <= position) {
      const {buffer} = this.lent.shift()!
      // A detached buffer (byteLength 0) went to a worker some other way: not ours to reuse.
      if (this.spare.length < this.keep && buffer.byteLength > 0) this.spare.push(buffer)
    }
  }

  /**
   * `output` is pushed next: its bytes end at the position so far plus its length. `lend`: it is
   * a view of a buffer from `take`, to be filled again once the reader is done with it; otherwise
   * it only moves the position on.
   */
  pushed(output: Uint8Array, lend: boolean): void {
    this.written += output.length
    if (!lend) return
    this.lent.push({buffer: output.buffer as ArrayBuffer, end: this.written})
    if (this.lent.length > MAX_LENT) this.lent.shift()
  }

  /** A buffer of at least `size` bytes: one done with (up to four times as large), else a new one of `capacity` bytes. */
  take(size: number, capacity = sizeClass(size)): ArrayBuffer {
    const most = 4 * Math.max(size, MIN_BUFFER)
    const at = this.spare.findIndex((b) => b.byteLength >= size && b.byteLength <= most)
    if (at === -1) return Buffer.allocUnsafeSlow(Math.max(size, capacity)).buffer as ArrayBuffer
    this.reused++
    return this.spare.splice(at, 1)[0]
  }
}
