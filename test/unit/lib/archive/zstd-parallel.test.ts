/**
 * The parallel decompressor: many independent frames decompress on worker threads and come out in
 * order; frames without a content size stream on the main thread; a lying content size, a corrupt
 * frame or a dead worker fail the stream and end the workers; output waits for the reader.
 */
import {spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {createRequire} from 'node:module'
import {availableParallelism} from 'node:os'
import {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {setTimeout as sleep} from 'node:timers/promises'
import {describe, expect, it} from 'vitest'

import {checkParallelism, defaultParallelism} from '../../../../src/lib/archive/compress.js'
import {
  createParallelDecompressor,
  decompressorName,
  defaultDecompressThreads,
  ParallelDecompressor,
} from '../../../../src/lib/archive/zstd-parallel.js'
import {BrError} from '../../../../src/lib/errors.js'
import {mixedBytes, through} from './fixture.js'

const require = createRequire(import.meta.url)
const napi = require('zstd-napi') as {compress(b: Buffer, p?: {compressionLevel?: number}): Buffer}
const MiB = 1024 * 1024
const one = (bytes: Buffer) => napi.compress(bytes, {compressionLevel: 3})

/** `data` as independent frames of `piece` bytes, as a multi-frame backup writes it. */
function frames(data: Buffer, piece: number): Buffer {
  const out: Buffer[] = []
  for (let i = 0; i < data.length; i += piece) out.push(one(data.subarray(i, i + piece)))
  return Buffer.concat(out)
}

/** Feeds `input` in `step`-byte writes, as age's decrypt stream does. */
async function decompress(input: Buffer, workers = 2, step = 65_536): Promise<Buffer> {
  const pieces: Buffer[] = []
  for (let i = 0; i < input.length; i += step) pieces.push(input.subarray(i, i + step))
  const chunks: Buffer[] = []
  await pipeline(Readable.from(pieces), createParallelDecompressor({impl: 'napi', workers}), async (source) => {
    for await (const chunk of source) chunks.push(chunk as Buffer)
  })
  return Buffer.concat(chunks)
}

/** Text that compresses about 3:1, so every frame is made of compressed blocks. */
function words(size: number): Buffer {
  const vocabulary = ['matrix', 'one', 'insert', 'into', 'values', 'select', 'from', 'where', 'table', 'row']
  const out: string[] = []
  let length = 0
  let seed = 7
  while (length < size) {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648
    const word = `${vocabulary[seed % vocabulary.length]}${seed % 1000} `
    out.push(word)
    length += word.length
  }

  return Buffer.from(out.join('')).subarray(0, size)
}

describe('ParallelDecompressor', () => {
  it('gives many frames back in order, with 1, 2 and 5 workers', async () => {
    // Pieces of different sizes and ratios, so frames finish out of order.
    const data = Buffer.concat([mixedBytes(9 * MiB), randomBytes(3 * MiB), Buffer.alloc(5 * MiB, 7)])
    const input = frames(data, 1536 * 1024 + 3)
    for (const workers of [1, 2, 5]) expect((await decompress(input, workers)).equals(data)).toBe(true)
  })

  it('gathers frames in the buffers its workers give back, and gives the same bytes', async () => {
    // Random text of 16 letters: each 1 MiB frame is about 540 KB compressed.
    const data = Buffer.from(randomBytes(12 * MiB).map((b) => 97 + (b % 16)))
    const parts: Buffer[] = []
    for (let i = 0; i < data.length; i += MiB) parts.push(one(data.subarray(i, i + MiB)))
    const d = createParallelDecompressor({impl: 'napi', workers: 2}) as ParallelDecompressor
    const chunks: Buffer[] = []
    let got = 0
    let wanted: (() => void) | undefined
    // A frame at a time, the next once the last one's output is out (in 64 KiB writes, as age's
    // decrypt stream gives them): each frame's buffer has come back from its worker by then.
    async function* oneByOne() {
      for (const [i, part] of parts.entries()) {
        for (let at = 0; at < part.length; at += 65_536) yield part.subarray(at, at + 65_536)

        await new Promise<void>((resolve) => {
          wanted = () => got >= (i + 1) * MiB && (resolve(), true)
          wanted()
        })
      }
    }

    await pipeline(oneByOne, d, async (source) => {
      for await (const chunk of source) {
        chunks.push(chunk as Buffer)
        got += (chunk as Buffer).length
        wanted?.()
      }
    })
    expect(Buffer.concat(chunks).equals(data)).toBe(true)
    // Every frame after the first is gathered in the buffer the one before it came back in.
    expect(d.reusedBuffers).toBe(parts.length - 1)
  })

  it('decompresses into the buffers its reader is done with, and gives the same bytes', async () => {
    const data = Buffer.concat([mixedBytes(9 * MiB), words(6 * MiB)])
    const input = frames(data, MiB)
    const pieces: Buffer[] = []
    for (let i = 0; i < input.length; i += 65_536) pieces.push(input.subarray(i, i + 65_536))
    for (const workers of [1, 2]) {
      const d = createParallelDecompressor({impl: 'napi', releasing: true, workers}) as ParallelDecompressor
      const copies: Buffer[] = []
      let position = 0

      await pipeline(Readable.from(pieces), d, async (source) => {
        for await (const chunk of source) {
          // Copied, then said to be done with: the buffer may be decompressed into again.
          copies.push(Buffer.from(chunk as Buffer))
          position += (chunk as Buffer).length
          d.doneWith(position)
        }
      })
      expect(Buffer.concat(copies).equals(data)).toBe(true)
      // 15 frames; the first few of each worker need buffers of their own.
      expect(d.outputsReused).toBeGreaterThanOrEqual(15 - 3 * workers - 2)
    }
  })

  it('detaches a buffer it decompresses into again: a view the reader kept reads as empty, not as other bytes', async () => {
    const data = mixedBytes(8 * MiB)
    const d = createParallelDecompressor({impl: 'napi', releasing: true, workers: 1}) as ParallelDecompressor
    const kept: Buffer[] = []
    let position = 0
    await pipeline(Readable.from([frames(data, MiB)]), d, async (source) => {
      for await (const chunk of source) {
        // Against its word: keeps the chunk itself, and says it is done with it.
        kept.push(chunk as Buffer)
        position += (chunk as Buffer).length
        d.doneWith(position)
      }
    })
    expect(d.outputsReused).toBeGreaterThan(0)
    const emptied = kept.filter((chunk) => chunk.length === 0)
    expect(emptied.length).toBeGreaterThanOrEqual(d.outputsReused)
    // Whatever was not emptied is still the very bytes it was at its place.
    let at = 0
    for (const chunk of kept) {
      if (chunk.length > 0) expect(chunk.equals(data.subarray(at, at + chunk.length))).toBe(true)
      at += chunk.length === 0 ? MiB : chunk.length
    }
  })

  it.each([false, true])(
    'without a reader that says what it is done with (releasing: %s), never decompresses into the same buffer twice',
    async (releasing) => {
      const data = mixedBytes(6 * MiB)
      const d = createParallelDecompressor({impl: 'napi', releasing, workers: 1}) as ParallelDecompressor
      const kept: Buffer[] = []
      await pipeline(Readable.from([frames(data, MiB)]), d, async (source) => {
        for await (const chunk of source) kept.push(chunk as Buffer)
      })
      expect(d.outputsReused).toBe(0)
      expect(Buffer.concat(kept).equals(data)).toBe(true)
    },
  )

  it('streams frames without a content size between whole ones (and old one-frame archives)', async () => {
    const a = mixedBytes(3 * MiB)
    const b = mixedBytes(2 * MiB + 1)
    const cli = spawnSync('/usr/bin/zstd', ['-3', '-q', '-c'], {input: b, maxBuffer: 64 * MiB})
    expect(cli.status).toBe(0)
    const input = Buffer.concat([frames(a, MiB), cli.stdout, frames(a, 700_000)])
    expect((await decompress(input, 2, 10_007)).equals(Buffer.concat([a, b, a]))).toBe(true)
    expect((await decompress(cli.stdout, 2)).equals(b)).toBe(true)
  })

  it('fails a frame whose content is not the size it declares, in a worker and on the calling thread', async () => {
    // 600,000 bytes: a worker's frame; 300,000: under MIN_POOLED_FRAME, decompressed on the calling thread
    for (const size of [600_000, 300_000]) {
      const frame = one(mixedBytes(size))
      // Single-segment header: magic, descriptor, then the 4-byte content size at offset 5.
      expect(frame[4] >> 6).toBe(2)
      const lying = Buffer.from(frame)
      lying.writeUInt32LE(size + 1, 5)

      await expect(decompress(Buffer.concat([one(Buffer.from('ok')), lying]))).rejects.toThrow(
        /corrupt zstd data|corruption/i,
      )
      const short = Buffer.from(frame)
      short.writeUInt32LE(size - 1, 5)

      await expect(decompress(short)).rejects.toThrow(/corrupt zstd data|corruption|destination buffer/i)
    }
  })

  it('fails a corrupt frame, and truncated input', async () => {
    const data = words(4 * MiB)
    const input = frames(data, MiB)
    // The middle of the third frame: inside its compressed blocks.
    const third =
      frames(data.subarray(0, 2 * MiB), MiB).length + Math.floor(one(data.subarray(2 * MiB, 3 * MiB)).length / 2)
    const corrupt = Buffer.from(input)
    for (let i = third; i < third + 64; i++) corrupt[i] ^= 0x5a
    await expect(decompress(corrupt)).rejects.toThrow(/corrupt zstd data|block/)
    await expect(decompress(input.subarray(0, -10))).rejects.toThrow(/ended in the middle of a frame/)
  })

  it('keeps output waiting for the reader: a bomb of many frames is not inflated ahead', async () => {
    // 512 MiB of zeros as 128 frames of 4 MiB, a few KiB compressed.
    const zeros = one(Buffer.alloc(4 * MiB))
    const bomb = Buffer.concat(Array.from({length: 128}, () => zeros))
    expect(bomb.length).toBeLessThan(MiB)
    const d = createParallelDecompressor({impl: 'napi', workers: 2}) as ParallelDecompressor
    d.write(bomb)
    await sleep(300)
    // Nobody reads: at most the high-water mark plus one frame waits, not 512 MiB.
    expect(d.readableLength).toBeLessThanOrEqual(5 * MiB)
    d.end()
    let total = 0
    for await (const chunk of d) total += (chunk as Buffer).length
    expect(total).toBe(128 * 4 * MiB)
  })

  it('ends its workers when destroyed mid-stream, and when a worker dies', async () => {
    const input = frames(mixedBytes(16 * MiB), MiB)
    const d = createParallelDecompressor({impl: 'napi', workers: 2}) as ParallelDecompressor
    d.write(input.subarray(0, 8 * MiB))
    await sleep(100)
    expect(d.threads).toBeGreaterThan(0)
    d.destroy()
    expect(d.threads).toBe(0)

    const e = createParallelDecompressor({impl: 'napi', workers: 2}) as ParallelDecompressor
    const failed = new Promise<Error>((resolve) => {
      e.once('error', resolve)
    })
    e.resume()
    e.write(input.subarray(0, 4 * MiB))
    await sleep(50)
    await e.killOneWorker()
    e.write(input.subarray(4 * MiB))
    expect((await failed).message).toMatch(/worker/)
    expect(e.threads).toBe(0)
  })
})

describe('createParallelDecompressor', () => {
  it('uses the workers with zstd-napi and the single-thread decompressor otherwise', async () => {
    const data = mixedBytes(3 * MiB)
    const input = frames(data, MiB)
    expect(createParallelDecompressor({impl: 'napi', workers: 2})).toBeInstanceOf(ParallelDecompressor)
    expect(createParallelDecompressor({impl: 'codec', workers: 2})).not.toBeInstanceOf(ParallelDecompressor)
    expect((await through(input, createParallelDecompressor({impl: 'codec'}))).equals(data)).toBe(true)
    expect(decompressorName('napi', 3)).toMatch(/zstd-napi .*3 decompression worker threads/)
    expect(decompressorName('codec')).toMatch(/zstd-codec/)
  })

  it('leaves a core to the main thread by default: the cores less one, 1 to 2 workers', () => {
    const cores = availableParallelism()
    const workers = defaultDecompressThreads()
    expect(workers).toBeGreaterThanOrEqual(1)
    expect(workers).toBeLessThanOrEqual(2)
    if (cores > 1) expect(workers).toBeLessThan(cores)
    if (cores >= 3) expect(workers).toBe(2)
    expect(decompressorName('napi')).toContain(`${workers} decompression worker thread`)
  })

  it('refuses a parallelism outside 1..64 as a usage error', () => {
    expect(defaultParallelism()).toBeGreaterThanOrEqual(1)
    expect(checkParallelism(1)).toBe(1)
    expect(checkParallelism(64)).toBe(64)
    for (const bad of [0, 65, 1.5, -2, Number.NaN]) {
      const error = (() => {
        try {
          checkParallelism(bad)
        } catch (error_) {
          return error_
        }
      })()
      expect(error).toBeInstanceOf(BrError)
      expect((error as BrError).exitCode).toBe(2)
      expect((error as BrError).message).toMatch(/--parallelism .* is not a whole number from 1 to 64/)
    }
  })
})
