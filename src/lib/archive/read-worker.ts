/**
 * One worker thread that both decompresses an archive's zstd frames and hashes (and could write)
 * the files in them: verify with one decompression thread, the default on 2 cores (read.ts
 * decides; not restore, whose writes the disk may hold up, and decompression with them). Each
 * frame is decompressed into shared memory (a SharedArrayBuffer of the decompressor's loan,
 * zstd-parallel.ts; frame-decoder.ts decodes it), the main thread reads the tar there, and the
 * file sink tells the worker where each file's bytes lie ([REF, buffer, start, end],
 * file-sink.ts), so the bytes are hashed by the thread that wrote them while they are still in
 * its cache. That takes the least CPU in all: bench/handoff.mjs (1 GiB, CPU-s, the buffers in the
 * loan's order) decompressed alone in 1.14; with the main thread hashing each frame after it,
 * 1.27 + 0.72 there; with the worker hashing each frame itself, 1.78 + 0.07.
 *
 * Guarantees: the worker handles messages in the order they are posted: the bytes a REF names are
 * hashed (and written) before a frame posted after it is decompressed over them, and the
 * decompressor hands a buffer out again only once the reader is done with it, which the file sink
 * is once it has posted its REFs (read.ts calls doneWith after FileSink.write). A frame whose
 * content differs from its declared size fails as corrupt (frame-decoder.ts). After a file
 * error the worker only answers batches (the sink fails with the first error), as file-sink.ts's
 * own worker does. `close` makes the worker close the file it has open and exit, and waits for
 * that; its owner (readArchive) calls it once, when the decompressor and the sink are both done or
 * have failed; neither ends the worker itself.
 */
import {createRequire} from 'node:module'
import {Worker} from 'node:worker_threads'

import {makeBatchProcessor, type Op, type SharedReadWorker} from './file-sink.js'
import {frameDecoderData, makeFrameDecoder} from './frame-decoder.js'

const require = createRequire(import.meta.url)

/** A frame to decompress into `output` (shared), `size` bytes of content. */
export interface FrameMessage {
  data: Uint8Array
  kind: 'frame'
  output: SharedArrayBuffer
  size: number
}

/* eslint-disable @typescript-eslint/no-explicit-any -- also runs as source in the worker */
/** The worker's main, self-contained (its source is the worker's): frames, batches, close. */
function sharedMain(make: typeof makeBatchProcessor, makeDecoder: typeof makeFrameDecoder): void {
  const threads = require('node:worker_threads')
  const port = threads.parentPort
  const decoder = makeDecoder(require, threads.workerData)
  const processor = make(require)
  const empty = Buffer.alloc(0)
  port.on('message', (m: any) => {
    switch (m.kind) {
      case 'batch': {
        const reply = processor.answer(m.buffer ? Buffer.from(m.buffer, 0, m.length) : empty, m.ops as Op[])
        port.postMessage({buffer: m.buffer, kind: 'batch', ...reply}, m.buffer ? [m.buffer] : [])
        break
      }

      case 'close': {
        processor.abort()
        port.close()
        break
      }

      case 'frame': {
        try {
          decoder.decode(Buffer.from(m.output, 0, m.size), m.data, m.size)
          port.postMessage({input: m.data, kind: 'frame'}, [m.data.buffer])
        } catch (error: any) {
          port.postMessage({error: decoder.damage(error, m.size), kind: 'frame'})
        }

        break
      }

      default: {
        throw new Error(`read worker: a message of no known kind (${String(m.kind)})`)
      }
    }
  })
}
/* eslint-enable @typescript-eslint/no-explicit-any */

const WORKER_SOURCE = `(${sharedMain.toString()})((${makeBatchProcessor.toString()}), (${makeFrameDecoder.toString()}))`

/** Shared read workers started and not yet exited, in this process (tests check that none is left). */
let live = 0
export const liveReadWorkers = (): number => live

/** The one worker of a read (see the module header); started on first use. */
export class ReadWorker implements SharedReadWorker {
  private exited: Promise<void> | undefined
  private worker: undefined | Worker

  /** Makes the worker close its file and exit, and waits for it; nothing if it never started. */
  async close(): Promise<void> {
    const {worker} = this
    if (!worker) return
    worker.postMessage({kind: 'close'})
    await this.exited
  }

  /** The worker, started on first use: listeners are the caller's to add. */
  start(): Worker {
    if (this.worker) return this.worker
    const worker = new Worker(WORKER_SOURCE, {eval: true, workerData: frameDecoderData()})
    live++
    // The decompressor and the sink each listen for its errors; this one only keeps an error
    // that comes before either listens from being thrown as unhandled.
    worker.on('error', () => {})
    this.exited = new Promise<void>((resolve) => {
      worker.once('exit', () => {
        live--
        resolve()
      })
    })
    this.worker = worker
    return worker
  }
}
