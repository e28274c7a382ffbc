/**
 * Parallel zstd decompression: a Duplex with the contract of compress.ts's `createDecompressor`
 * (compressed bytes in, the decompressed stream out, in order) that sends every frame with a
 * declared content size of at most MAX_POOLED_FRAME to a pool of worker threads (zstd-napi's
 * one-shot decompression there), and decompresses every other frame (no content size, a larger
 * one: archives of format 1 are one such frame) on this thread with the bounded streaming
 * decoder, in stream order.
 *
 * Guarantees: the output is byte for byte what `createDecompressor` gives, and fails where it
 * fails (zstd-frames.ts refuses malformed headers and windows over 128 MiB before anything is
 * decompressed); a frame whose content differs from its declared size fails (zstd checks it, and
 * so does this module). Memory is bounded whatever the input: frames start in a worker only while
 * the output of the started-but-not-yet-read frames stays under IN_FLIGHT_BYTES (at least one
 * frame), compressed input is taken only while less than QUEUED_INPUT_BYTES of it waits, and output
 * is pushed only as the reader takes it (a frame's buffer is its size class: up to twice its
 * content). With `releasing`, a frame is decompressed into a buffer the reader said it is done
 * with (doneWith, loan.ts), not a new one: then up to SPARE_OUTPUTS buffers a worker wait for
 * reuse, and the loan tracks at most 64 MiB of buffers the reader has not reported on. On an
 * error, on destroy (abort) and at the end every worker is terminated and the loan forgotten;
 * but with `shared` (read-worker.ts), the one worker of a read, into whose SharedArrayBuffers the
 * frames are decompressed, and which the file sink also uses: its owner ends it.
 * Only zstd-napi can run in a worker here: with another implementation (zstd-codec, Node's
 * zlib), or one worker asked for with none available, this is `createDecompressor` itself. It does not check content: hashes live in the manifest.
 */
import {createRequire} from 'node:module'
import {availableParallelism} from 'node:os'
import {performance} from 'node:perf_hooks'
import {Duplex, Transform, type TransformCallback} from 'node:stream'
import {Worker} from 'node:worker_threads'

import {
  checkParallelism,
  compressorName,
  createDecompressor,
  createStepDecoder,
  type Decoder,
  MAX_WINDOW_LOG,
  type ZstdImplementation,
  zstdImplementation,
  zstdImplementations,
} from './compress.js'
import {frameDecoderData, makeFrameDecoder} from './frame-decoder.js'
import {BufferLoan, MIN_BUFFER, sizeClass} from './loan.js'
import {type FrameMessage, type ReadWorker} from './read-worker.js'
import {type FramePiece, FrameSplitter} from './zstd-frames.js'

const require = createRequire(import.meta.url)

/** Frames declaring up to this much content go to the workers; S1 writes ~4 MiB frames. */
export const MAX_POOLED_FRAME = 16 * 1024 * 1024
/**
 * Decompression workers when none are asked for: at most 2, and one core left for the main thread
 * (decryption, tar, the frames) and restore's writer thread: restore and verify are bound by all
 * their CPU, not by zstd. On 2 cores, 1 worker restored the 1 GiB set in 6.2-7.2 s (8.7-9.9 CPU-s)
 * against 7.6-8.1 s (10.3-11.9) with 2, and verified it as fast (6.2-6.8 s both) in ~15 MiB less.
 */
export const DEFAULT_DECOMPRESS_THREADS = 2

/** The decompression workers when none are asked for: the cores here less one, 1 to DEFAULT_DECOMPRESS_THREADS. */
export function defaultDecompressThreads(): number {
  return Math.min(DEFAULT_DECOMPRESS_THREADS, Math.max(1, availableParallelism() - 1))
}

/** Frames declaring less content than this are decompressed on the calling thread (the archive's last frame, or a small archive's only one). */
export const MIN_POOLED_FRAME = 512 * 1024
/** Output of frames started but not yet read, and compressed input waiting, at most (one frame always may). */
const IN_FLIGHT_BYTES = 64 * 1024 * 1024
/** Compressed input waiting for its turn, at most (one piece always may): a few frames ahead of the workers. */
const QUEUED_INPUT_BYTES = 16 * 1024 * 1024
/** A streamed piece decompresses to about this at most (as in compress.ts). */
const STREAM_BUDGET = 2 * 1024 * 1024
/**
 * Frame buffers the workers give back, kept for the next frames: each frame gathered in a new
 * buffer was ~half the external memory that made V8 run a full GC every 64 MiB (verify of 1 GiB:
 * 72 mark-compacts, 57 of them for external memory pressure). Two are enough: one frame is
 * gathered at a time, and 497 of verify's ~510 frames found one (8 kept: 506), for 4 MiB at most.
 */
const SPARE_BUFFERS = 2
/**
 * Output buffers kept for reuse, per worker (loan.ts): a worker's frames in flight are at most two
 * (ParallelDecompressor.launch), and a few more are on their way through tar to the reader.
 */
const SPARE_OUTPUTS = 3

/** Streaming decompression runs at most this long before the event loop gets a turn. */
const PUMP_SLICE_MS = 20

/**
 * The worker: one frame at a time, into the output buffer it is given (a new one when none is),
 * transferred back.
 */
function workerMain(make: typeof makeFrameDecoder): void {
  const threads = require('node:worker_threads')
  const port = threads.parentPort
  const decoder = make(require, threads.workerData)
  port.on('message', ({data, output, size}: {data: Uint8Array; output?: ArrayBuffer; size: number}) => {
    try {
      const out = output ? Buffer.from(output, 0, size) : Buffer.allocUnsafeSlow(size)
      decoder.decode(out, data, size)
      // The input goes back too: the main thread gathers the next frames in it (no new memory there).
      port.postMessage({input: data, out}, [out.buffer, data.buffer])
    } catch (error) {
      port.postMessage({error: decoder.damage(error, size)})
    }
  })
}

const WORKER_SOURCE = `(${workerMain.toString()})((${makeFrameDecoder.toString()}))`

export interface ParallelDecompressOptions {
  impl?: ZstdImplementation
  /**
   * the reader tells `doneWith(position)` when it is done with the output before `position`: the
   * frames' buffers are then decompressed into again (ParallelDecompressor.doneWith)
   */
  releasing?: boolean
  /**
   * the one worker of a read (read-worker.ts, with `releasing` and one worker): frames are
   * decompressed there into shared buffers, which it also reads; its owner ends it
   */
  shared?: ReadWorker
  /** decompression threads; default defaultDecompressThreads() */
  workers?: number
  /** for tests: the worker's source instead of the real one */
  workerSource?: string
}

/** Whether frames can be decompressed in worker threads with `impl`. */
export function parallelAvailable(impl: ZstdImplementation = zstdImplementation()): boolean {
  return impl === 'napi' && zstdImplementations().includes('napi')
}

/** Human name of the decompression in use, for --verbose and --json. */
export function decompressorName(
  impl: ZstdImplementation = zstdImplementation(),
  workers = defaultDecompressThreads(),
): string {
  return parallelAvailable(impl)
    ? `zstd-napi (native, ${workers} decompression worker thread${workers === 1 ? '' : 's'} for independent frames)`
    : `${compressorName(impl)}, one stream on the main thread`
}

/** A stream that decompresses zstd, independent frames in parallel (see the module header). */
export function createParallelDecompressor(options: ParallelDecompressOptions = {}): Duplex {
  const impl = options.impl ?? zstdImplementation()
  const workers = checkParallelism(options.workers ?? defaultDecompressThreads())
  if (!parallelAvailable(impl)) return createDecompressor(impl)
  const {shared} = options
  if (shared && (workers !== 1 || !options.releasing))
    throw new Error('a shared read worker needs one worker and releasing')
  return new ParallelDecompressor(impl, workers, options.workerSource ?? WORKER_SOURCE, {
    releasing: options.releasing ?? false,
    shared,
  })
}

interface FrameJob {
  contentSize: number
  data: Buffer
  kind: 'frame'
  result?: Promise<Buffer>
}

type Job = FrameJob | {data: Buffer; kind: 'stream'}

interface PoolJob {
  data: Buffer
  output?: ArrayBufferLike
  reject(error: Error): void
  resolve(out: Buffer): void
  size: number
}

/**
 * Worker threads, started as needed up to `size`, each decompressing one frame at a time; or the
 * one worker of a read (`shared`, read-worker.ts), which the pool uses and never ends.
 */
class WorkerPool {
  /** frames gathered in a buffer a worker gave back (tests) */
  reused = 0
  private broken: Error | undefined
  private readonly busy = new Map<Worker, PoolJob>()
  private readonly idle: Worker[] = []
  private readonly queue: PoolJob[] = []
  /** frame buffers the workers gave back, for the next frames (allocate) */
  private readonly spare: ArrayBuffer[] = []
  private started = 0

  constructor(
    private readonly size: number,
    private readonly source: string,
    private readonly shared?: ReadWorker,
  ) {}

  /** Workers running now. */
  get threads(): number {
    return this.idle.length + this.busy.size
  }

  /**
   * A buffer of `size` bytes to gather a frame in: one a worker gave back when one holds it and
   * is not over four times as large, else a new one of its size class (sizeClass), so that
   * frames of about one size find it again.
   */
  allocate(size: number): Buffer {
    const most = 4 * Math.max(size, MIN_BUFFER)
    const at = this.spare.findIndex((b) => b.byteLength >= size && b.byteLength <= most)
    if (at !== -1) {
      this.reused++
      return Buffer.from(this.spare.splice(at, 1)[0], 0, size)
    }

    return Buffer.allocUnsafeSlow(sizeClass(size)).subarray(0, size)
  }

  destroy(): void {
    this.broken ??= new Error('the zstd workers were stopped')
    // A shared worker goes on for the file sink; its owner ends it.
    if (!this.shared) for (const worker of [...this.idle, ...this.busy.keys()]) worker.terminate().catch(() => {})
    for (const job of this.busy.values()) job.reject(this.broken)
    for (const job of this.queue) job.reject(this.broken)
    this.idle.length = 0
    this.busy.clear()
    this.queue.length = 0
    this.spare.length = 0
  }

  /** Ends one worker as a crash would (tests). */
  async killOne(): Promise<void> {
    const worker = this.busy.keys().next().value ?? this.idle[0]
    await worker?.terminate()
  }

  /** Keeps a frame buffer a worker gave back (one allocate made), up to SPARE_BUFFERS of them, the newest. */
  recycle(buffer: ArrayBuffer): void {
    if (this.broken || buffer.byteLength !== sizeClass(buffer.byteLength)) return
    this.spare.push(buffer)
    if (this.spare.length > SPARE_BUFFERS) this.spare.shift()
  }

  /**
   * Decompresses the frame `data` of `size` bytes of content, into `output` when given (at least
   * `size` bytes; a SharedArrayBuffer for a shared worker, which is given one always).
   */
  async run(data: Buffer, size: number, output?: ArrayBufferLike): Promise<Buffer> {
    if (this.broken) throw this.broken
    return new Promise((resolve, reject) => {
      this.queue.push({data, output, reject, resolve, size})
      this.next()
    })
  }

  /** One frame's answer: its output (in the shared buffer it was given, or moved back), or a failure. */
  private answer(worker: Worker, message: {error?: string; input?: Uint8Array; out?: Uint8Array}): void {
    const job = this.busy.get(worker)
    this.busy.delete(worker)
    if (!job) return
    if (message.input) this.recycle(message.input.buffer as ArrayBuffer)
    const out = this.shared && !message.error ? new Uint8Array(job.output!, 0, job.size) : message.out
    if (out) {
      job.resolve(Buffer.from(out.buffer, out.byteOffset, out.byteLength))
      this.idle.push(worker)
      this.next()
    } else {
      // A damaged frame: the stream fails with it, and every worker stops.
      this.fail(worker, new Error(message.error ?? 'a zstd worker failed'), job)
    }
  }

  /** Fails `job` (the worker's, by default) and everything else with `error`, and ends every worker. */
  private fail(worker: Worker, error: Error, job = this.busy.get(worker)): void {
    this.busy.delete(worker)
    this.broken ??= error
    job?.reject(error)
    this.destroy()
  }

  /** Takes `worker`'s answers (a shared worker's frame answers only) and its failure. */
  private listen(worker: Worker): Worker {
    worker.on('message', (reply: {error?: string; input?: Uint8Array; kind?: string; out?: Uint8Array}) => {
      if (this.shared && reply.kind !== 'frame') return
      this.answer(worker, reply)
    })
    worker.on('error', (error) => this.fail(worker, error))
    worker.on('exit', (code) => {
      if (!this.broken) this.fail(worker, new Error(`a zstd worker thread stopped (exit code ${code})`))
    })
    return worker
  }

  private next(): void {
    while (this.queue.length > 0) {
      const worker = this.idle.pop() ?? (this.started < this.size ? this.spawn() : undefined)
      if (!worker) return
      const job = this.queue.shift()
      if (!job) return
      this.busy.set(worker, job)
      const transfer = [job.data.buffer as ArrayBuffer]
      if (this.shared) {
        // The output is shared, not moved: the worker fills it in place.
        const message: FrameMessage = {
          data: job.data,
          kind: 'frame',
          output: job.output as SharedArrayBuffer,
          size: job.size,
        }
        worker.postMessage(message, transfer)
        continue
      }

      if (job.output) transfer.push(job.output as ArrayBuffer)
      worker.postMessage({data: job.data, output: job.output, size: job.size}, transfer)
    }
  }

  private spawn(): Worker {
    this.started++
    if (this.shared) return this.listen(this.shared.start())
    const worker = new Worker(this.source, {
      eval: true,
      workerData: frameDecoderData(),
    })
    return this.listen(worker)
  }
}

export class ParallelDecompressor extends Transform {
  private decoder: Decoder | undefined
  private draining = false
  private flushed: TransformCallback | undefined
  private held: TransformCallback | undefined
  /** output of started frames not yet pushed */
  private inFlight = 0
  private readonly jobs: Job[] = []
  /** the frames' output buffers, when the reader says what it is done with (doneWith) */
  private readonly loan: BufferLoan | undefined
  /** compressed bytes waiting in `jobs` */
  private queued = 0
  /** the one worker of a read, when the pool is it (read-worker.ts) */
  private readonly shared: ReadWorker | undefined
  private readonly splitter: FrameSplitter
  private started = 0
  private wake: (() => void) | undefined
  private workerPool: undefined | WorkerPool

  constructor(
    private readonly impl: ZstdImplementation,
    private readonly workers: number,
    private readonly source: string,
    how: {releasing: boolean; shared?: ReadWorker},
  ) {
    super({readableHighWaterMark: 1024 * 1024})
    this.shared = how.shared
    this.loan = how.releasing ? new BufferLoan(SPARE_OUTPUTS * workers, how.shared !== undefined) : undefined
    this.splitter = new FrameSplitter({
      // The pool is made here if need be (its workers start with the first frame it runs).
      allocate: (size) => this.pool().allocate(size),
      budget: STREAM_BUDGET,
      maxPooled: MAX_POOLED_FRAME,
      maxWindowLog: MAX_WINDOW_LOG,
    })
  }

  /** Frames decompressed into a buffer the reader was done with (tests). */
  get outputsReused(): number {
    return this.loan?.reused ?? 0
  }

  /** Frames gathered in a buffer a worker gave back (tests). */
  get reusedBuffers(): number {
    return this.workerPool?.reused ?? 0
  }

  /** Workers running now (tests). */
  get threads(): number {
    return this.workerPool?.threads ?? 0
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.workerPool?.destroy()
    this.decoder?.release()
    this.jobs.length = 0
    this.loan?.clear()
    this.wake?.()
    callback(error)
  }

  override _flush(callback: TransformCallback): void {
    if (!this.splitter.atFrameBoundary) {
      callback(new Error('the zstd stream ended in the middle of a frame'))
      return
    }

    this.flushed = callback
    this.drain()
  }

  override _read(size: number): void {
    const {wake} = this
    this.wake = undefined
    wake?.()
    super._read(size)
  }

  override _transform(chunk: Buffer, _encoding: string, callback: TransformCallback): void {
    let pieces: FramePiece[]
    try {
      pieces = this.splitter.push(chunk)
    } catch (error) {
      callback(error as Error)
      return
    }

    for (const piece of pieces) {
      // A small frame (a small archive is one) is decompressed here: a worker would cost more.
      this.jobs.push(
        piece.kind === 'frame' && piece.contentSize < MIN_POOLED_FRAME ? {data: piece.data, kind: 'stream'} : piece,
      )
      this.queued += piece.data.length
    }

    this.held = callback
    this.drain()
    this.release()
  }

  /**
   * The reader is done with every byte of output before `position` (copied or dropped, no view
   * of it left anywhere): the frames' buffers that end there are decompressed into again
   * (loan.ts). Only with `releasing`; the reader that says so must call it.
   */
  doneWith(position: number): void {
    this.loan?.doneWith(position)
  }

  /** Ends one worker as a crash would (tests). */
  async killOneWorker(): Promise<void> {
    await this.workerPool?.killOne()
  }

  private drain(): void {
    if (this.draining) return
    this.draining = true
    this.run().then(
      () => {
        this.draining = false
        if (this.jobs.length > 0 && !this.destroyed) {
          this.drain()
          return
        }

        const {flushed} = this
        this.flushed = undefined
        if (flushed) {
          this.workerPool?.destroy()
          this.decoder?.release()
          this.loan?.clear()
          flushed()
        }
      },
      (error: unknown) => {
        this.draining = false
        this.destroy(error as Error)
      },
    )
  }

  /** Pushes one output, waiting while the reader is behind; `lend`: a frame in a buffer of the loan, to be filled again. */
  private async give(output: Buffer, lend = false): Promise<void> {
    if (this.destroyed) return
    this.loan?.pushed(output, lend)
    if (output.length === 0 || this.push(output) || this.destroyed) return
    await new Promise<void>((resolve) => {
      this.wake = resolve
    })
  }

  /** Starts frames at the front of the queue while their output fits in flight. */
  private launch(): void {
    for (const job of this.jobs) {
      if (job.kind !== 'frame') {
        // Frames after a streamed piece wait for it only in order of output, not to start.
        continue
      }

      if (job.result) continue
      if (this.started > 0 && (this.inFlight + job.contentSize > IN_FLIGHT_BYTES || this.started >= 2 * this.workers))
        return
      job.result = this.pool().run(job.data, job.contentSize, this.loan?.take(job.contentSize))
      // Awaited in order by drain(); an early failure must not go unhandled meanwhile.
      job.result.catch(() => {})
      this.inFlight += job.contentSize
      this.started++
    }
  }

  /** The worker pool, made on first use; its workers start with the first frame it runs. */
  private pool(): WorkerPool {
    this.workerPool ??= new WorkerPool(this.workers, this.source, this.shared)
    return this.workerPool
  }

  /** Lets the writer go on once little enough is waiting. */
  private release(): void {
    if (!this.held || (this.queued > QUEUED_INPUT_BYTES && this.jobs.length > 1)) return
    const {held} = this
    this.held = undefined
    held()
  }

  /** Outputs the jobs in order until none is left. */
  private async run(): Promise<void> {
    while (this.jobs.length > 0 && !this.destroyed) {
      this.launch()
      const job = this.jobs[0]
      if (job.kind === 'frame') {
        // eslint-disable-next-line no-await-in-loop -- in order
        const output = await (job.result ?? Promise.reject(new Error('a zstd frame was not started')))
        if (this.destroyed) return
        this.jobs.shift()
        this.queued -= job.data.byteLength
        this.inFlight -= job.contentSize
        this.started--
        this.launch()
        this.release()
        // eslint-disable-next-line no-await-in-loop -- in order
        await this.give(output, true)
      } else {
        this.jobs.shift()
        this.queued -= job.data.length
        this.release()
        // eslint-disable-next-line no-await-in-loop -- in order
        await this.stream(job.data)
      }
    }
  }

  /** Decompresses a piece of a streamed frame on this thread, handing out its output as the reader takes it. */
  private async stream(data: Buffer): Promise<void> {
    this.decoder ??= createStepDecoder(this.impl)
    let piece = data
    let since = performance.now()
    for (;;) {
      // eslint-disable-next-line no-await-in-loop -- one step after another
      const {consumed, more, output} = await this.decoder.step(piece)
      piece = piece.subarray(consumed)
      // eslint-disable-next-line no-await-in-loop -- in order
      if (output) await this.give(output)
      if (this.destroyed || (piece.length === 0 && !more)) return
      if (performance.now() - since > PUMP_SLICE_MS) {
        // eslint-disable-next-line no-await-in-loop -- let timers, I/O and SIGINT in
        await new Promise((resolve) => {
          setImmediate(resolve)
        })
        since = performance.now()
      }
    }
  }
}
