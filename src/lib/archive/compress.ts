/**
 * zstd compression and decompression as Node Transform streams, over the fastest implementation
 * that loads here: zstd-napi (native, optional dependency, multi-threaded), Node's own zlib zstd
 * (Node >= 22.15), or zstd-codec (WebAssembly, always there). The choice is made once, when this
 * module loads; `MOCTL_BR_ZSTD=napi|node|codec` forces one (tests and benchmarks).
 *
 * Guarantees: every implementation writes ordinary single-frame zstd that the `zstd` CLI and every
 * other implementation here reads; corrupt input makes the decompressor fail (callers turn that
 * into an integrity error). It does not check content: hashes live in the manifest and the age
 * layer authenticates every byte. zstd-codec's decompressor does not notice a frame cut short;
 * the tar parser after it does (and the record's size, and age, before it).
 */
import {createRequire} from 'node:module'
import {Transform, type TransformCallback} from 'node:stream'
import zlib from 'node:zlib'

import type {ZstdImplementation} from './types.js'

import {BrError, usageError} from '../errors.js'

export type {ZstdImplementation} from './types.js'

/** The slice of zstd-napi we use; typed here because the package is optional. */
interface ZstdNapi {
  CompressStream: new (parameters: {compressionLevel?: number; nbWorkers?: number}) => Transform
  DecompressStream: new () => Transform
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

/** zstd-napi's default thread count is 0 (compress on the caller's thread); 2 workers roughly doubles throughput. */
const NAPI_WORKERS = 2
/**
 * zstd-codec's WebAssembly heap is fixed at 16 MiB: one write of ~9 MiB aborts the module for the
 * rest of the process. Slices of 1 MiB stay far below that whatever the caller writes.
 */
const CODEC_SLICE = 1024 * 1024
/** Node's zlib default output chunk is 16 KiB: larger chunks mean fewer round trips to the thread pool. */
const NODE_CHUNK = 256 * 1024

const napi = loadNapi()
const nodeZstd = loadNodeZstd()
const selected = select(process.env.MOCTL_BR_ZSTD)

/** The implementations that load in this process, fastest first. */
export function zstdImplementations(): ZstdImplementation[] {
  return [...(napi ? (['napi'] as const) : []), ...(nodeZstd ? (['node'] as const) : []), 'codec']
}

/** The implementation used when none is named (chosen at load; see the module header). */
export function zstdImplementation(): ZstdImplementation {
  if (selected instanceof BrError) throw selected
  return selected
}

/** Human name of the implementation in use, for logs and benchmark output. */
export function compressorName(impl: ZstdImplementation = zstdImplementation()): string {
  switch (impl) {
    case 'codec': {
      return 'zstd-codec (WebAssembly)'
    }

    case 'napi': {
      return `zstd-napi (native, ${NAPI_WORKERS} workers)`
    }

    case 'node': {
      return 'node:zlib zstd'
    }
  }
}

/** A Transform that compresses what is written to it into one zstd frame. */
export function createCompressor(level: number, impl: ZstdImplementation = zstdImplementation()): Transform {
  if (!Number.isInteger(level) || level < 1 || level > 19) {
    throw usageError(`zstd level ${level} is out of range`, 'use a level from 1 (fastest) to 19 (smallest)')
  }

  switch (impl) {
    case 'codec': {
      return new CodecStream('compress', level)
    }

    case 'napi': {
      return new (need(napi, 'napi').CompressStream)({compressionLevel: level, nbWorkers: NAPI_WORKERS})
    }

    case 'node': {
      const zstd = need(nodeZstd, 'node')
      return zstd.createZstdCompress({chunkSize: NODE_CHUNK, params: {[zstd.constants.ZSTD_c_compressionLevel]: level}})
    }
  }
}

/** A Transform that decompresses one or more zstd frames. */
export function createDecompressor(impl: ZstdImplementation = zstdImplementation()): Transform {
  switch (impl) {
    case 'codec': {
      return new CodecStream('decompress')
    }

    case 'napi': {
      return new (need(napi, 'napi').DecompressStream)()
    }

    case 'node': {
      return need(nodeZstd, 'node').createZstdDecompress({chunkSize: NODE_CHUNK})
    }
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

function select(forced: string | undefined): BrError | ZstdImplementation {
  if (forced === undefined || forced === '') return zstdImplementations()[0]
  if (forced !== 'napi' && forced !== 'node' && forced !== 'codec') {
    return usageError(`MOCTL_BR_ZSTD=${forced} is not a zstd implementation`, 'use napi, node or codec, or unset it')
  }

  if (!zstdImplementations().includes(forced)) return unavailable(forced)
  return forced
}

function need<T>(impl: null | T, name: ZstdImplementation): T {
  if (impl === null) throw unavailable(name)
  return impl
}

function unavailable(name: ZstdImplementation): BrError {
  return name === 'napi'
    ? usageError(
        'zstd-napi is not installed (its native build did not run)',
        'reinstall with a C++ toolchain (python3, make, g++), or unset MOCTL_BR_ZSTD',
      )
    : usageError(
        'this Node.js has no zlib zstd (it needs Node >= 22.15)',
        'unset MOCTL_BR_ZSTD, or run a newer Node.js',
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
