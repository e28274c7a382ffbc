/**
 * Decompressing one whole zstd frame on a worker thread: the code the decompression workers
 * (zstd-parallel.ts) and a verify's read worker (read-worker.ts) share, what they are started
 * with (`frameDecoderData`: the largest window a frame may ask for among it), and the words a
 * frame's failure is reported in. `makeFrameDecoder` is self-contained: its source is evaluated
 * in those workers. It imports none of theirs (they would otherwise import each other).
 *
 * Guarantees: a frame that does not decompress to exactly the content size it declares fails;
 * every failure reads as damage ("corrupt zstd data: …"), which read.ts reports as an integrity
 * error.
 */
import {createRequire} from 'node:module'

import {MAX_WINDOW_LOG} from './compress.js'

const require = createRequire(import.meta.url)

/** A decoding worker's workerData: zstd-napi's binding, and the largest window a frame may ask for. */
export function frameDecoderData(): {binding: string; windowLogMax: number} {
  return {binding: require.resolve('zstd-napi/binding'), windowLogMax: MAX_WINDOW_LOG}
}

/* eslint-disable @typescript-eslint/no-explicit-any -- also runs as source in the workers */
/**
 * One zstd-napi context for whole frames: `decode` fills `out` with the frame's `size` bytes of
 * content, and fails when the frame holds another number of them; `damage` words whatever went
 * wrong with a frame as a damaged one.
 */
export function makeFrameDecoder(load: (id: string) => any, data: ReturnType<typeof frameDecoderData>) {
  const binding = load(data.binding)
  const dctx = new binding.DCtx()
  dctx.setParameter(binding.DParameter.windowLogMax, data.windowLogMax)
  return {
    damage(error: any, size: number): string {
      const message = String((error && error.message) || error)
      return message.startsWith('corrupt zstd data')
        ? message
        : `corrupt zstd data: ${message} (a frame declaring ${size} bytes)`
    },
    decode(out: Uint8Array, frame: Uint8Array, size: number): void {
      const n = dctx.decompress(out, frame)
      if (n !== size) throw new Error(`corrupt zstd data: a frame declares ${size} bytes of content but holds ${n}`)
    },
  }
}
/* eslint-enable @typescript-eslint/no-explicit-any */
