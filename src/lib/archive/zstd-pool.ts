/**
 * Parallel zstd compression: the bytes written are cut into pieces of a fixed size (2 MiB), and
 * each piece is compressed as an independent zstd frame (Frame_Content_Size in its header) on a
 * pool of worker threads, each with one reusable compression context; the frames come out in the
 * order of their pieces. The concatenation of zstd frames is an ordinary zstd stream: `zstd -d`
 * and every decompressor in compress.ts read it as they read the single frame written before, and
 * a reader may also decompress the frames in parallel (each one is whole by itself).
 *
 * Guarantees: output order is input order whatever the workers' speeds; at most 2 pieces per
 * worker are in flight (being compressed, queued, or compressed and waiting for an earlier one),
 * so memory is bounded by workers × 2 × (piece + its frame buffer) whatever the input size (a
 * frame buffer is zstdBound(piece) when the reader gives them back, else the frame's size); an empty
 * input gives one empty frame (a valid zstd stream, as the single-stream compressors write); a
 * compression error or a worker that dies fails the stream with that error; the workers are
 * terminated when the stream ends or is destroyed (an abort through `pipeline`'s signal destroys
 * it), so nothing is left running. With `workers: 1` the same frames are compressed on the calling
 * thread and no worker starts; nor does one when the whole input fits in one piece (it is
 * compressed on the calling thread at the end). The workers start with the first full piece, or
 * at once when the caller expects more than a piece (`expectedBytes`): a worker takes 50-75 ms to
 * start on the bench's VM, which then passes while the first piece is read. With `releasing`, a
 * frame is compressed into a buffer the reader said it is done with (doneWith, loan.ts), not a new
 * one. It does not check what it compresses, nor use zstd-codec (compress.ts keeps that one as the
 * single-stream fallback).
 *
 * The worker's code is the two self-contained functions below, passed as source (`eval`): it runs
 * the same from dist/ and from the TypeScript sources under vitest, with no worker file to find.
 */
import {createRequire} from 'node:module'
import {Transform, type TransformCallback} from 'node:stream'
import {Worker} from 'node:worker_threads'

import {BufferLoan} from './loan.js'

/**
 * Bytes of input per frame. Measured on the 1 GiB bench set at level 3 (zstd-napi, one thread):
 * 1, 2, 4 and 8 MiB pieces cost 3.2, 3.2, 3.9 and 4.5 CPU-s per 256 MiB, for ratios 2.038 (2 MiB),
 * 2.035 (4 MiB), 2.034 (8 MiB): 2 MiB is the cheapest size with the same ratio.
 */
export const PIECE_BYTES = 2 * 1024 * 1024
/** Pieces in flight per worker: one being compressed, one queued behind it. */
const IN_FLIGHT_PER_WORKER = 2

export type PoolImplementation = 'napi' | 'node'

/** What a compression context (in a worker or on the calling thread) is built from. */
interface PieceSpec {
  /** zstd-napi's binding, resolved by path (a worker evaluated from source resolves from the cwd) */
  bindingPath: string
  impl: PoolImplementation
  level: number
  pieceBytes: number
}

/** Faults and delays the tests inject into the workers (workers >= 2 only). */
export interface PoolTesting {
  /** per worker index, milliseconds each piece takes at least */
  delayMs?: number[]
  /** the piece (by sequence number) whose compression fails */
  faultAt?: number
  /** 'throw': compression throws (the worker reports it); 'exit': the worker thread exits with code 3 */
  faultKind?: 'exit' | 'throw'
}

export interface PoolOptions {
  /**
   * the bytes the caller expects to write, if it knows: more than a piece starts the workers at
   * once, not when the first piece is full (they are stopped when the stream ends or is destroyed,
   * whatever it was given)
   */
  expectedBytes?: number
  impl: PoolImplementation
  level: number
  /** bytes per frame; PIECE_BYTES by default */
  pieceBytes?: number
  /** called with each input chunk once its bytes are copied (walk.ts ReadBuffers takes them back) */
  recycle?: (chunk: Buffer) => void
  /** the reader calls `doneWith(position)` as it is done with output: frames are then compressed into buffers it gave back */
  releasing?: boolean
  testing?: PoolTesting
  /** worker threads; 1: compress on the calling thread, no worker */
  workers: number
}

interface Job {
  buffer: ArrayBuffer
  length: number
  /** where to put the frame (at least zstdBound(pieceBytes) bytes); none: a new buffer of its size */
  out?: ArrayBuffer
  seq: number
}

type Reply = {error: string; seq: number} | {input: ArrayBuffer; out: Uint8Array; seq: number}

/**
 * Compresses one piece into one frame, in `dest` when given (at least zstdBound of the piece);
 * otherwise the result may be a view of a scratch buffer, valid until the next call.
 */
type PieceCompressor = (src: Uint8Array, dest?: Uint8Array) => Uint8Array

/** zstd's ZSTD_COMPRESSBOUND: the largest frame `size` bytes can compress to. */
export function zstdBound(size: number): number {
  const small = 128 * 1024
  return size + Math.floor(size / 256) + (size < small ? Math.floor((small - size) / 2048) : 0)
}

/** Frame buffers kept for reuse beyond those in flight (loan.ts): the ones on their way to the reader. */
const SPARE_FRAMES = 2
/** A frame under 1/SMALL_FRAME of its buffer is copied out, not lent (PoolCompressor.lend). */
const SMALL_FRAME = 8

const require = createRequire(import.meta.url)

/* eslint-disable @typescript-eslint/no-explicit-any -- also runs as source in a worker, on modules loaded by path */
/**
 * One compression context: zstd-napi's CCtx (ZSTD_compress2 into one scratch buffer; it writes
 * Frame_Content_Size) or Node >= 22.15's zlib.zstdCompressSync. Self-contained: it is also
 * evaluated as source inside the workers.
 */
function makePieceCompressor(load: (id: string) => any, spec: PieceSpec): PieceCompressor {
  if (spec.impl === 'napi') {
    const binding = load(spec.bindingPath)
    const cctx = new binding.CCtx()
    cctx.setParameter(binding.CParameter.compressionLevel, spec.level)
    const scratch = Buffer.allocUnsafe(binding.compressBound(spec.pieceBytes))
    return (src, dest = scratch) => dest.subarray(0, cctx.compress2(dest, src))
  }

  const zlib = load('node:zlib')
  const params = {[zlib.constants.ZSTD_c_compressionLevel]: spec.level}
  return (src, dest) => {
    const frame = zlib.zstdCompressSync(src, {params, pledgedSrcSize: src.length})
    if (!dest) return frame
    dest.set(frame)
    return dest.subarray(0, frame.length)
  }
}

/** A worker's main: compresses each piece it is sent and sends the frame and the piece's buffer back. */
function workerMain(make: typeof makePieceCompressor): void {
  const threads = require('node:worker_threads')
  const port = threads.parentPort
  const {index, spec, testing} = threads.workerData
  const compress = make(require, spec)
  const delay: number = testing?.delayMs?.[index] ?? 0
  const pause = new Int32Array(new SharedArrayBuffer(4))
  port.on('message', (job: Job) => {
    try {
      if (delay > 0) Atomics.wait(pause, 0, 0, delay)
      if (testing?.faultAt === job.seq) {
        // eslint-disable-next-line n/no-process-exit -- the fault the tests inject
        if (testing.faultKind === 'exit') process.exit(3)
        throw new Error(`injected fault in piece ${job.seq}`)
      }

      const src = new Uint8Array(job.buffer, 0, job.length)
      let out: Uint8Array
      if (job.out) {
        out = compress(src, new Uint8Array(job.out))
      } else {
        // A copy of its own: a view of the scratch buffer would send (or detach) the whole of it.
        const frame = compress(src)
        out = new Uint8Array(frame.length)
        out.set(frame)
      }

      port.postMessage({input: job.buffer, out, seq: job.seq}, [out.buffer, job.buffer])
    } catch (error: any) {
      port.postMessage({error: String(error?.message ?? error), seq: job.seq})
    }
  })
}
/* eslint-enable @typescript-eslint/no-explicit-any */

/** Worker threads started and not yet exited, in this process (tests check that none is left). */
let live = 0
export const liveWorkers = (): number => live

const WORKER_SOURCE = `(${workerMain.toString()})((${makePieceCompressor.toString()}))`

/** Where pieces are compressed: worker threads, or the calling thread. */
interface Engine {
  close(): Promise<void>
  submit(job: Job): void
}

/** N worker threads; a piece goes to the one with the fewest pieces pending. */
class WorkerEngine implements Engine {
  private closing = false
  private readonly pending: number[]
  private readonly workers: Worker[]

  constructor(
    count: number,
    work: {spec: PieceSpec; testing: PoolTesting | undefined},
    onReply: (reply: Reply) => void,
    private readonly onFail: (error: Error) => void,
  ) {
    const {spec, testing} = work
    this.pending = Array.from({length: count}, () => 0)
    this.workers = Array.from({length: count}, (_, index) => {
      const worker = new Worker(WORKER_SOURCE, {eval: true, workerData: {index, spec, testing}})
      live++
      worker.once('exit', () => live--)
      worker.on('message', (reply: Reply) => {
        this.pending[index]--
        onReply(reply)
      })
      worker.on('error', (error) => this.fail(new Error(`a zstd worker failed: ${error.message}`)))
      worker.on('exit', (code) => this.fail(new Error(`a zstd worker exited (code ${code}) before the end`)))
      return worker
    })
  }

  async close(): Promise<void> {
    this.closing = true
    await Promise.all(this.workers.map((w) => w.terminate()))
  }

  submit(job: Job): void {
    let best = 0
    for (let i = 1; i < this.pending.length; i++) if (this.pending[i] < this.pending[best]) best = i
    this.pending[best]++
    // Moved, not copied: a buffer left out of the list would be cloned, 2 MiB a piece.
    this.workers[best].postMessage(job, job.out ? [job.buffer, job.out] : [job.buffer])
  }

  private fail(error: Error): void {
    if (!this.closing) this.onFail(error)
  }
}

/** The calling thread: each piece compressed as it is submitted. */
class InlineEngine implements Engine {
  private readonly compress: PieceCompressor

  constructor(
    spec: PieceSpec,
    private readonly onReply: (reply: Reply) => void,
  ) {
    this.compress = makePieceCompressor(require, spec)
  }

  async close(): Promise<void> {}

  submit(job: Job): void {
    let reply: Reply
    try {
      const src = new Uint8Array(job.buffer, 0, job.length)
      // In the job's buffer, or copied out of the scratch buffer, which the next piece reuses.
      const out = job.out ? this.compress(src, new Uint8Array(job.out)) : Buffer.from(this.compress(src))
      reply = {input: job.buffer, out, seq: job.seq}
    } catch (error) {
      reply = {error: (error as Error).message, seq: job.seq}
    }

    this.onReply(reply)
  }
}

/** The Transform: pieces in, frames out in order (see the module header). */
export class PoolCompressor extends Transform {
  private engine: Engine | undefined
  private filled = 0
  private flushed: TransformCallback | undefined
  private readonly free: ArrayBuffer[] = []
  private inFlight = 0
  /** the frames' buffers, when the reader says what it is done with (doneWith) */
  private readonly loan: BufferLoan | undefined
  private readonly maxInFlight: number
  private nextOut = 0
  private piece: ArrayBuffer | undefined
  private readonly pieceBytes: number
  private readonly ready = new Map<number, Uint8Array>()
  private seq = 0
  private readonly spec: PieceSpec
  private waiting: TransformCallback | undefined

  constructor(private readonly options: PoolOptions) {
    super()
    this.pieceBytes = options.pieceBytes ?? PIECE_BYTES
    this.maxInFlight = Math.max(1, options.workers) * IN_FLIGHT_PER_WORKER
    this.spec = {
      bindingPath: options.impl === 'napi' ? require.resolve('zstd-napi/binding') : '',
      impl: options.impl,
      level: options.level,
      pieceBytes: this.pieceBytes,
    }
    this.loan = options.releasing ? new BufferLoan(this.maxInFlight + SPARE_FRAMES) : undefined
    // The workers start while the first piece is read (~60 ms in the bench's incremental: opening
    // the output, hashing a grown file's old bytes): that incremental, 15 interleaved rounds, took
    // 1.11 s against 1.15 s (median) when they started with the first full piece.
    if (options.workers > 1 && (options.expectedBytes ?? 0) > this.pieceBytes) this.engine = this.startEngine()
  }

  /** Frames compressed into a buffer the reader was done with (tests). */
  get framesReused(): number {
    return this.loan?.reused ?? 0
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const {engine} = this
    this.engine = undefined
    this.loan?.clear()
    if (!engine) {
      callback(error)
      return
    }

    engine.close().then(
      () => callback(error),
      () => callback(error),
    )
  }

  override _flush(callback: TransformCallback): void {
    this.flushed = callback
    // An input of one piece (most archives of a small data dir, or an incremental's manifest) is
    // compressed here: starting worker threads would cost more than the piece.
    if (this.seq === 0 && !this.engine) this.engine = new InlineEngine(this.spec, this.onReply.bind(this))
    // An empty input still makes a stream: one empty frame.
    if (this.filled > 0 || this.seq === 0) this.dispatch()
    this.settle()
  }

  override _transform(chunk: Buffer, _encoding: string, callback: TransformCallback): void {
    let at = 0
    while (at < chunk.length) {
      this.piece ??= this.free.pop() ?? new ArrayBuffer(this.pieceBytes)
      const n = Math.min(chunk.length - at, this.pieceBytes - this.filled)
      chunk.copy(new Uint8Array(this.piece), this.filled, at, at + n)
      this.filled += n
      at += n
      if (this.filled === this.pieceBytes) this.dispatch()
    }

    this.options.recycle?.(chunk)
    if (this.inFlight < this.maxInFlight) callback()
    else this.waiting = callback
  }

  /**
   * The reader is done with every byte of output before `position` (no view of it left anywhere):
   * the frames' buffers that end there are compressed into again (loan.ts). Only with
   * `releasing`; the reader that says so must call it.
   */
  doneWith(position: number): void {
    this.loan?.doneWith(position)
  }

  private dispatch(): void {
    const buffer = this.piece ?? this.free.pop() ?? new ArrayBuffer(this.pieceBytes)
    const bound = zstdBound(this.pieceBytes)
    const job: Job = {
      buffer,
      length: this.filled,
      out: this.loan?.take(bound, bound) as ArrayBuffer | undefined,
      seq: this.seq++,
    }
    this.piece = undefined
    this.filled = 0
    this.inFlight++
    this.engine ??= this.startEngine()
    this.engine.submit(job)
  }

  /**
   * The frame as it is pushed: with a loan, a view of its buffer, lent to the reader; a frame that
   * fills less than an eighth of it (zeros, text) is copied out, and the buffer is kept: a small
   * frame must not hold 2 MiB while it waits for a slow output (1 GiB of zeros held 819 MiB).
   */
  private lend(out: Uint8Array): Buffer {
    const view = Buffer.from(out.buffer, out.byteOffset, out.byteLength)
    if (!this.loan) return view
    if (out.byteLength >= out.buffer.byteLength / SMALL_FRAME) {
      this.loan.pushed(view, true)
      return view
    }

    const copy = Buffer.from(view)
    this.loan.giveBack(out.buffer as ArrayBuffer)
    this.loan.pushed(copy, false)
    return copy
  }

  private onReply(reply: Reply): void {
    if (this.destroyed) return
    if ('error' in reply) {
      this.destroy(new Error(`zstd compression failed: ${reply.error}`))
      return
    }

    if (this.free.length < this.maxInFlight) this.free.push(reply.input)
    this.ready.set(reply.seq, reply.out)
    for (let out = this.ready.get(this.nextOut); out; out = this.ready.get(this.nextOut)) {
      this.ready.delete(this.nextOut++)
      this.inFlight--
      this.push(this.lend(out))
    }

    if (this.waiting && this.inFlight < this.maxInFlight) {
      const callback = this.waiting
      this.waiting = undefined
      callback()
    }

    this.settle()
  }

  /** Ends the stream once flushed and every frame is out; the workers go first. */
  private settle(): void {
    if (!this.flushed || this.inFlight > 0) return
    const callback = this.flushed
    this.flushed = undefined
    this.loan?.clear()
    const {engine} = this
    this.engine = undefined
    ;(engine ? engine.close() : Promise.resolve()).then(
      () => callback(),
      (error: unknown) => callback(error as Error),
    )
  }

  private startEngine(): Engine {
    const onReply = this.onReply.bind(this)
    const {testing, workers} = this.options
    return workers <= 1
      ? new InlineEngine(this.spec, onReply)
      : new WorkerEngine(workers, {spec: this.spec, testing}, onReply, (error) => this.destroy(error))
  }
}
