/**
 * zstd compression and decompression as Node Transform streams, over the fastest implementation
 * that loads here: zstd-napi (native, optional dependency, multi-threaded), Node's own zlib zstd
 * (Node >= 22.15), or zstd-codec (WebAssembly, always there). The fastest is found once, when
 * this module loads; a caller (tests, benchmarks) may name another through `Implementations`,
 * never through the environment.
 *
 * Guarantees: every implementation writes ordinary zstd that the `zstd` CLI and every other
 * implementation here reads: zstd-napi and Node's zlib as independent frames of 2 MiB of input,
 * compressed in parallel on worker threads (zstd-pool.ts), zstd-codec as one frame; corrupt input makes the decompressor fail (callers turn that
 * into an integrity error). Decompression is bounded whatever the input: frames that ask for a
 * window over 128 MiB (zstd -3 uses 2 MiB, --long 128 MiB; 8 MiB for zstd-codec, whose heap is
 * 16 MiB) are refused from their header,
 * and output is produced only as the reader takes it (a zstd bomb of a few KiB that inflates to
 * GiBs never sits in memory: at most a few MiB are ahead of the reader). A stream that ends
 * inside a frame fails. It does not check content: hashes live in the manifest and the age layer
 * authenticates every byte.
 */
import {createRequire} from 'node:module'
import {availableParallelism} from 'node:os'
import {performance} from 'node:perf_hooks'
import {Duplex, pipeline, Transform, type TransformCallback} from 'node:stream'
import zlib from 'node:zlib'

import type {ZstdImplementation} from './types.js'

import {BrError, usageError} from '../errors.js'
import {PIECE_BYTES, PoolCompressor, type PoolTesting} from './zstd-pool.js'

export type {ZstdImplementation} from './types.js'

/** The slice of zstd-napi we use; typed here because the package is optional. */
interface ZstdNapi {
  CompressStream: new (parameters: {compressionLevel?: number; nbWorkers?: number; windowLog?: number}) => Transform
}

/** zstd-napi's binding: the streaming decompressor one call at a time, whose output we bound. */
interface ZstdNapiBinding {
  DCtx: new () => {
    decompressStream(dst: Uint8Array, src: Uint8Array): [number, number, number]
    setParameter(parameter: number, value: number): void
  }
  DParameter: {windowLogMax: number}
  dStreamOutSize(): number
}

/** Node 22.15+/24 zlib zstd; absent from @types/node 20. */
interface ZlibZstd {
  constants: Record<string, number>
  createZstdCompress(options: {chunkSize?: number; params?: Record<number, number>}): Transform
  createZstdDecompress(options?: {chunkSize?: number}): Transform
}

/** One compression or decompression context inside zstd-codec's WebAssembly module. */
interface CodecContext {
  begin(level?: number): boolean
  delete(): void
  end(callback: (bytes: Uint8Array) => void): boolean
  transform(bytes: Uint8Array, callback: (bytes: Uint8Array) => void): boolean
}

interface CodecModule {
  ZstdCompressStreamBinding: new () => CodecContext
  ZstdDecompressStreamBinding: new () => CodecContext
}

const require = createRequire(import.meta.url)

/** The most compression workers --parallelism may ask for. */
export const MAX_PARALLELISM = 64
/**
 * zstd-codec's WebAssembly heap is fixed at 16 MiB: one write of ~9 MiB aborts the module for the
 * rest of the process. Slices of 1 MiB stay far below that whatever the caller writes.
 */
const CODEC_SLICE = 1024 * 1024
/** Node's zlib default output chunk is 16 KiB: larger chunks mean fewer round trips to the thread pool. */
const NODE_CHUNK = 256 * 1024
/** The largest window a frame may ask for: what `zstd --long` uses; every level we write uses at most 8 MiB. */
export const MAX_WINDOW_LOG = 27
/**
 * zstd-codec's WebAssembly heap is 16 MiB, and a window that does not fit aborts the module for
 * the whole process: there, 8 MiB (level 19's window, the largest we write).
 */
const CODEC_MAX_WINDOW_LOG = 23
/** zstd's largest block, decompressed (RFC 8878 Block_Maximum_Size). */
const BLOCK_MAX = 128 * 1024
/** Sizes of a frame header's Dictionary_ID and Frame_Content_Size fields, by their flags. */
const DID_SIZES = [0, 1, 2, 4]
const FCS_SIZES = [0, 2, 4, 8]
/** A decompression step produces about this much at most (plus one block) before the reader is asked. */
const OUTPUT_BUDGET = 2 * 1024 * 1024
/** Decompression runs at most this long before the event loop gets a turn. */
const PUMP_SLICE_MS = 20
/** Decompressed bytes buffered ahead of the reader before decompression pauses. */
const OUTPUT_HIGH_WATER = 1024 * 1024

const napi = loadNapi()
const napiBinding = napi ? (require('zstd-napi/binding') as ZstdNapiBinding) : null
const nodeZstd = loadNodeZstd()
const fastest = zstdImplementations()[0]

/** The implementations that load in this process, fastest first. */
export function zstdImplementations(): ZstdImplementation[] {
  return [...(napi ? (['napi'] as const) : []), ...(nodeZstd ? (['node'] as const) : []), 'codec']
}

/** The implementation used when none is named: the fastest that loads here. */
export function zstdImplementation(): ZstdImplementation {
  return fastest
}

/**
 * Compression workers when none are asked for: one per core this process may use, at most 4. The
 * bench's model (README "Speed") puts backup's limit at its main thread from about 4 cores, and
 * every worker thread costs ~17-20 MiB: more would add memory, not speed. `--parallelism` goes higher.
 */
export const DEFAULT_COMPRESS_THREADS = 4

/** Threads when none are asked for: one per core this process may use, at most `cap`. */
export function defaultParallelism(cap = DEFAULT_COMPRESS_THREADS): number {
  return Math.min(cap, MAX_PARALLELISM, Math.max(1, availableParallelism()))
}

/** How a compressor runs besides its level and implementation. */
export interface CompressOptions {
  /** napi and node: the bytes about to be written, if known; more than a frame's starts the workers at once */
  expectedBytes?: number
  /**
   * worker threads compressing independent frames (napi and node), 1-64; 1: the same frames on the
   * calling thread. Default defaultParallelism(). zstd-codec ignores it: one stream, calling thread.
   */
  parallelism?: number
  /** bytes of input per frame (benchmarks measure it); PIECE_BYTES by default */
  pieceBytes?: number
  /** napi and node: called with each input chunk once its bytes are copied, for reuse */
  recycle?: (chunk: Buffer) => void
  /**
   * napi and node: the reader tells the compressor's `doneWith(position)` what output it is done
   * with, and the frames' buffers are filled again (zstd-pool.ts PoolCompressor.doneWith)
   */
  releasing?: boolean
  /** faults and delays the tests inject into the workers */
  testing?: PoolTesting
}

/** Human name of the implementation in use, and how it runs, for logs, --json and benchmark output. */
export function compressorName(impl: ZstdImplementation = zstdImplementation(), parallelism?: number): string {
  const workers = parallelism ?? defaultParallelism()
  const how = `${workers > 1 ? `${workers} worker threads` : 'on the main thread'}, ${PIECE_BYTES / 2 ** 20} MiB frames`
  switch (impl) {
    case 'codec': {
      return 'zstd-codec (WebAssembly, one stream on the main thread)'
    }

    case 'napi': {
      return `zstd-napi (native, ${how})`
    }

    case 'node': {
      return `node:zlib zstd (${how})`
    }
  }
}

/**
 * A Transform that compresses what is written to it: independent frames of PIECE_BYTES compressed
 * in parallel (zstd-pool.ts) with zstd-napi or Node's zlib, one frame with zstd-codec. Either is
 * one zstd stream to a reader.
 */
export function createCompressor(
  level: number,
  impl: ZstdImplementation = zstdImplementation(),
  options: CompressOptions = {},
): Transform {
  if (!Number.isInteger(level) || level < 1 || level > 19) {
    throw usageError(`zstd level ${level} is out of range`, 'use a level from 1 (fastest) to 19 (smallest)')
  }

  const workers = checkParallelism(options.parallelism ?? defaultParallelism())
  switch (impl) {
    case 'codec': {
      return new CodecStream('compress', level)
    }

    case 'napi': {
      need(napi, 'napi')
      return new PoolCompressor({impl, level, ...options, workers})
    }

    case 'node': {
      need(nodeZstd, 'node')
      return new PoolCompressor({impl, level, ...options, workers})
    }
  }
}

/** `parallelism` if it is a whole number from 1 to MAX_PARALLELISM; a usage error otherwise. */
export function checkParallelism(parallelism: number, flag = '--parallelism'): number {
  if (!Number.isInteger(parallelism) || parallelism < 1 || parallelism > MAX_PARALLELISM) {
    throw usageError(
      `${flag} ${parallelism} is not a whole number from 1 to ${MAX_PARALLELISM}`,
      `pass e.g. ${flag} ${defaultParallelism()} (zstd threads; default: the cores here, at most ${DEFAULT_COMPRESS_THREADS} for a backup; the cores less one, 1-2, for a restore)`,
    )
  }

  return parallelism
}

/** The widest window (log2) `impl` accepts in a frame header. */
export function maxWindowLog(impl: ZstdImplementation = zstdImplementation()): number {
  return impl === 'codec' ? CODEC_MAX_WINDOW_LOG : MAX_WINDOW_LOG
}

/** A stream that decompresses one or more zstd frames, bounded in memory (see the module header). */
export function createDecompressor(impl: ZstdImplementation = zstdImplementation()): Duplex {
  switch (impl) {
    case 'codec': {
      return new BoundedDecompressor(new CodecDecoder(), CODEC_MAX_WINDOW_LOG)
    }

    case 'napi': {
      return new BoundedDecompressor(new NapiDecoder(need(napiBinding, 'napi')), MAX_WINDOW_LOG)
    }

    case 'node': {
      // zlib's streams already wait for the reader between output chunks; the frames are checked
      // before them, and the window bound is zstd's own parameter too.
      const zstd = need(nodeZstd, 'node')
      const windowLogMax = zstd.constants.ZSTD_d_windowLogMax
      const inflate = zstd.createZstdDecompress({
        chunkSize: NODE_CHUNK,
        ...(windowLogMax === undefined ? {} : {params: {[windowLogMax]: MAX_WINDOW_LOG}}),
      })
      const check = new FrameCheck(MAX_WINDOW_LOG)
      // Errors of either stage reach the pair (pipeline destroys the other one with them).
      pipeline(check, inflate, () => {})
      return Duplex.from({readable: inflate, writable: check})
    }
  }
}

/**
 * The step decoder under `createDecompressor`, for a caller that cuts its input itself so that
 * one step gives at most a few MiB (zstd-parallel.ts, through zstd-frames.ts): napi and codec.
 */
export function createStepDecoder(impl: ZstdImplementation = zstdImplementation()): Decoder {
  if (impl === 'node') throw usageError('node:zlib zstd has no step decoder', 'use napi or codec')
  return impl === 'napi' ? new NapiDecoder(need(napiBinding, 'napi')) : new CodecDecoder()
}

/** A compressor with a chosen window, for tests that need frames asking for more than we accept. */
export function createCompressorWithWindow(windowLog: number): Transform {
  return new (need(napi, 'napi').CompressStream)({compressionLevel: 3, windowLog})
}

/* eslint-disable no-bitwise -- zstd headers are bit fields */
/**
 * Walks the zstd frames of a stream by their headers (RFC 8878), without decompressing: refuses
 * windows over MAX_WINDOW and malformed headers, knows whether the stream stopped between
 * frames, and says where to cut the input so that no piece can decompress to much more than a
 * budget (a block header tells the most its block can give: its size for raw and RLE blocks,
 * 128 KiB for a compressed one).
 */
class FrameWalker {
  /** after the current skip: 'block' (more blocks), 'magic' (next frame) */
  private after: 'block' | 'magic' = 'magic'
  private checksum = false
  private collected = 0
  private descriptor = 0
  private readonly head = Buffer.alloc(16)
  /** predicted output since the last cut */
  private owed = 0
  /** bytes still to pass over, in the skip states */
  private skip = 0
  private state: 'block' | 'descriptor' | 'header' | 'magic' | 'skipping' | 'skipSize' = 'magic'
  private want = 4
  private window = 0

  constructor(private readonly maxWindowLog: number) {}

  get atFrameBoundary(): boolean {
    return this.state === 'magic' && this.collected === 0
  }

  /** Offsets inside `chunk` to cut it at; throws on a frame this reader refuses. */
  scan(chunk: Buffer, budget: number): number[] {
    const cuts: number[] = []
    let i = 0
    while (i < chunk.length) {
      if (this.state === 'skipping') {
        const n = Math.min(this.skip, chunk.length - i)
        i += n
        this.skip -= n
        if (this.skip === 0) this.expect(this.after, this.after === 'block' ? 3 : 4)
        continue
      }

      const start = i - this.collected // where this header began; negative: in an earlier chunk
      const n = Math.min(this.want - this.collected, chunk.length - i)
      chunk.copy(this.head, this.collected, i, i + n)
      this.collected += n
      i += n
      if (this.collected < this.want) continue
      this.collected = 0
      const cost = this.parse()
      if (cost > 0 && this.owed > 0 && this.owed + cost > budget) {
        if (start > 0) cuts.push(start)
        this.owed = 0
      }

      this.owed += cost
    }

    return cuts
  }

  private expect(state: FrameWalker['state'], want: number): void {
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
        this.parseWindow()
        this.expect('block', 3)
        return 0
      }

      case 'magic': {
        const magic = this.head.readUInt32LE(0)
        if (magic === 0xfd_2f_b5_28) this.expect('descriptor', 1)
        else if ((magic & 0xff_ff_ff_f0) >>> 0 === 0x18_4d_2a_50) this.expect('skipSize', 4)
        else throw new Error('corrupt zstd data: not a zstd frame')
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

  /** The frame's window: from its descriptor, or its content size for a single-segment frame. */
  private parseWindow(): void {
    const {descriptor: d, head} = this
    const fcsFlag = d >> 6
    if ((d >> 5) & 1) {
      const at = DID_SIZES[d & 3]
      this.window = [
        () => head[at],
        () => head.readUInt16LE(at) + 256,
        () => head.readUInt32LE(at),
        () => Number(head.readBigUInt64LE(at)),
      ][fcsFlag]()
    } else {
      const base = 2 ** (10 + (head[0] >> 3))
      this.window = base + (base / 8) * (head[0] & 7)
    }

    if (this.window > 2 ** this.maxWindowLog) {
      throw new Error(
        `a zstd frame asks for a ${Math.ceil(this.window / 2 ** 20)} MiB window, more than the ${2 ** (this.maxWindowLog - 20)} MiB this reader allows`,
      )
    }
  }

  private skipThen(bytes: number, after: 'block' | 'magic'): void {
    this.skip = bytes
    this.after = after
    this.state = 'skipping'
    if (bytes === 0) this.expect(after, after === 'block' ? 3 : 4)
  }
}

/* eslint-enable no-bitwise */

/** Passes bytes on unchanged after FrameWalker checked their frame headers. */
class FrameCheck extends Transform {
  private readonly walker: FrameWalker

  constructor(maxWindowLog: number) {
    super()
    this.walker = new FrameWalker(maxWindowLog)
  }

  override _flush(callback: TransformCallback): void {
    callback(this.walker.atFrameBoundary ? null : new Error('the zstd stream ended in the middle of a frame'))
  }

  override _transform(chunk: Buffer, _encoding: string, callback: TransformCallback): void {
    try {
      this.walker.scan(chunk, Number.POSITIVE_INFINITY)
    } catch (error) {
      callback(error as Error)
      return
    }

    callback(null, chunk)
  }
}

/** One decompression call: takes some of `input` and gives some output (maybe none). */
export interface Decoder {
  release(): void
  /** `more`: the output may not be all that `input` so far gives; call again, with no new input if need be */
  step(
    input: Buffer,
  ):
    | Promise<{consumed: number; more: boolean; output: Buffer | null}>
    | {consumed: number; more: boolean; output: Buffer | null}
}

/**
 * Decompression that waits for the reader: input is cut where FrameWalker says (so one step
 * cannot produce much more than OUTPUT_BUDGET), each step's output is pushed, and once the
 * readable side holds OUTPUT_HIGH_WATER the steps stop until it is read.
 */
class BoundedDecompressor extends Transform {
  private callback: TransformCallback | undefined
  private pieces: Buffer[] = []
  private pumping = false
  private waiting = false
  private readonly walker: FrameWalker

  constructor(
    private readonly decoder: Decoder,
    maxWindowLog: number,
  ) {
    super({readableHighWaterMark: OUTPUT_HIGH_WATER})
    this.walker = new FrameWalker(maxWindowLog)
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.decoder.release()
    callback(error)
  }

  override _flush(callback: TransformCallback): void {
    this.decoder.release()
    callback(this.walker.atFrameBoundary ? null : new Error('the zstd stream ended in the middle of a frame'))
  }

  override _read(size: number): void {
    if (this.waiting) {
      this.waiting = false
      this.pump().catch((error: unknown) => this.destroy(error as Error))
      return
    }

    super._read(size)
  }

  override _transform(chunk: Buffer, _encoding: string, callback: TransformCallback): void {
    let cuts: number[]
    try {
      cuts = this.walker.scan(chunk, OUTPUT_BUDGET)
    } catch (error) {
      callback(error as Error)
      return
    }

    let from = 0
    for (const cut of [...cuts, chunk.length]) {
      this.pieces.push(chunk.subarray(from, cut))
      from = cut
    }

    this.callback = callback
    this.pump().catch((error: unknown) => this.destroy(error as Error))
  }

  /**
   * Decompresses the pending pieces until they are used up or the reader is behind. A reader
   * that takes everything at once (a tar parser fed synchronously) would keep this loop going for
   * the whole archive: after PUMP_SLICE_MS it lets the event loop in and comes back.
   */
  private async pump(): Promise<void> {
    if (this.pumping) return
    this.pumping = true
    const started = performance.now()
    try {
      while (this.pieces.length > 0) {
        if (performance.now() - started > PUMP_SLICE_MS) {
          setImmediate(() => this.pump().catch((error: unknown) => this.destroy(error as Error)))
          return
        }

        const piece = this.pieces[0]
        // eslint-disable-next-line no-await-in-loop -- one step after another, in order
        const {consumed, more, output} = await this.decoder.step(piece)
        if (consumed >= piece.length && !more) this.pieces.shift()
        else this.pieces[0] = piece.subarray(consumed)
        if (this.destroyed) return
        if (output && output.length > 0 && !this.push(output) && this.pieces.length > 0) {
          this.waiting = true
          return
        }
      }
    } catch (error) {
      this.pieces = []
      const {callback} = this
      this.callback = undefined
      callback?.(error as Error)
      return
    } finally {
      this.pumping = false
    }

    const {callback} = this
    this.callback = undefined
    callback?.()
  }
}

/** zstd-napi's native decompressor, one output buffer (128 KiB) per step. */
class NapiDecoder implements Decoder {
  private readonly context: InstanceType<ZstdNapiBinding['DCtx']>
  private readonly outSize: number

  constructor(binding: ZstdNapiBinding) {
    this.context = new binding.DCtx()
    this.context.setParameter(binding.DParameter.windowLogMax, MAX_WINDOW_LOG)
    this.outSize = binding.dStreamOutSize()
  }

  release(): void {
    // The context is freed by its finalizer.
  }

  step(input: Buffer): {consumed: number; more: boolean; output: Buffer | null} {
    const out = Buffer.allocUnsafe(this.outSize)
    const [, produced, consumed] = this.context.decompressStream(out, input)
    // A full output buffer may leave more inside the decoder; a partial one means it is drained.
    return {consumed, more: produced === out.length, output: produced > 0 ? out.subarray(0, produced) : null}
  }
}

/** zstd-codec's WebAssembly decompressor: a whole (bounded) piece per step, its outputs joined. */
class CodecDecoder implements Decoder {
  private readonly collect = (bytes: Uint8Array) => {
    this.outputs.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
  }
  private context: CodecContext | undefined
  private readonly outputs: Buffer[] = []

  release(): void {
    this.context?.delete()
    this.context = undefined
  }

  async step(input: Buffer): Promise<{consumed: number; more: boolean; output: Buffer | null}> {
    if (!this.context) {
      const {binding} = await loadCodec()
      const context = new binding.ZstdDecompressStreamBinding()
      if (!context.begin()) {
        context.delete()
        throw new Error('zstd-codec: cannot start a zstd context')
      }

      this.context = context
    }

    // Pieces are at most a few MiB of output, and the WebAssembly heap takes 1 MiB of input at a time.
    for (let offset = 0; offset < input.length; offset += CODEC_SLICE) {
      if (!this.context.transform(input.subarray(offset, offset + CODEC_SLICE), this.collect))
        throw new Error('zstd-codec: corrupt zstd data')
    }

    const output = this.outputs.length === 1 ? this.outputs[0] : Buffer.concat(this.outputs)
    this.outputs.length = 0
    return {consumed: input.length, more: false, output: output.length > 0 ? output : null}
  }
}

function loadNapi(): null | ZstdNapi {
  try {
    return require('zstd-napi') as ZstdNapi
  } catch {
    // Optional: absent when its native build could not run at install time.
    return null
  }
}

function loadNodeZstd(): null | ZlibZstd {
  // Looked up by name: Node 20's zlib has no zstd, and its types do not know it.
  const z: Record<string, unknown> = zlib as unknown as Record<string, unknown>
  // eslint-disable-next-line n/no-unsupported-features/node-builtins -- feature-detected: this is the check
  return typeof z.createZstdCompress === 'function' && typeof z.createZstdDecompress === 'function'
    ? (z as unknown as ZlibZstd)
    : null
}

function need<T>(impl: null | T, name: ZstdImplementation): T {
  if (impl === null) throw unavailable(name)
  return impl
}

function unavailable(name: ZstdImplementation): BrError {
  return name === 'napi'
    ? usageError(
        'zstd-napi is not installed (its native build did not run)',
        'reinstall with a C++ toolchain (python3, make, g++), or use another implementation',
      )
    : usageError(
        'this Node.js has no zlib zstd (it needs Node >= 22.15)',
        'run a newer Node.js, or use another implementation',
      )
}

let codecModule: Promise<{binding: CodecModule}> | undefined

/** Loads zstd-codec's WebAssembly module once, on first use: the other implementations never pay for it. */
async function loadCodec(): Promise<{binding: CodecModule}> {
  codecModule ??= new Promise<{binding: CodecModule}>((resolve, reject) => {
    try {
      // The binding under zstd-stream.js's Transform classes (which never free their contexts):
      // with it we own the slicing and free each context when its stream ends.
      const module = require('zstd-codec/lib/module.js') as {run(f: (binding: CodecModule) => void): void}
      // Always wrapped: emscripten modules carry a `then` method, and a promise resolved with one
      // adopts it as a thenable and spins forever in microtasks.
      module.run((binding) => resolve({binding}))
    } catch (error) {
      reject(error)
    }
  })
  return codecModule
}

/**
 * zstd-codec's streaming binding behind a Transform: writes are cut into 1 MiB slices, and the
 * context (memory inside the fixed WebAssembly heap) is freed at the end or on destroy, so many
 * streams in one process do not exhaust the heap.
 */
class CodecStream extends Transform {
  private context: CodecContext | undefined
  private readonly output = (bytes: Uint8Array) => {
    // The binding hands a fresh copy out of the WebAssembly heap: wrap it, no second copy.
    this.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
  }

  constructor(
    private readonly mode: 'compress' | 'decompress',
    private readonly level = 3,
  ) {
    super()
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.release()
    callback(error)
  }

  override _flush(callback: TransformCallback): void {
    this.run(callback, (context) => {
      const ok = context.end(this.output)
      this.release()
      if (!ok)
        throw new Error(
          `zstd-codec: ${this.mode === 'compress' ? 'cannot finish the frame' : 'the zstd stream ends in the middle of a frame'}`,
        )
    })
  }

  override _transform(chunk: Buffer, _encoding: string, callback: TransformCallback): void {
    this.run(callback, (context) => {
      for (let offset = 0; offset < chunk.length; offset += CODEC_SLICE) {
        if (!context.transform(chunk.subarray(offset, offset + CODEC_SLICE), this.output)) {
          throw new Error(`zstd-codec: ${this.mode === 'compress' ? 'compression failed' : 'corrupt zstd data'}`)
        }
      }
    })
  }

  private release(): void {
    this.context?.delete()
    this.context = undefined
  }

  private run(callback: TransformCallback, step: (context: CodecContext) => void): void {
    const go = (context: CodecContext) => {
      try {
        step(context)
        callback()
      } catch (error) {
        callback(error as Error)
      }
    }

    if (this.context) {
      go(this.context)
      return
    }

    loadCodec().then(({binding}) => {
      if (this.destroyed) return callback()
      const context =
        this.mode === 'compress' ? new binding.ZstdCompressStreamBinding() : new binding.ZstdDecompressStreamBinding()
      if (!(this.mode === 'compress' ? context.begin(this.level) : context.begin())) {
        context.delete()
        return callback(new Error('zstd-codec: cannot start a zstd context'))
      }

      this.context = context
      go(context)
    }, callback)
  }
}
