/**
 * The parallel compressor (zstd-pool.ts) behind createCompressor: independent frames with their
 * content size, read back by every decompressor here, in order whatever the workers' speeds, the
 * same bytes on the calling thread (--parallelism 1) as on workers, one empty frame for an empty
 * input, and every way it can fail (a compression error, a worker that dies, an abort) failing
 * the stream with its cause and leaving no worker running. For zstd-napi here, and Node's zlib
 * zstd where it loads (Node >= 22.15).
 */
import {createRequire} from 'node:module'
import {Readable, Writable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {describe, expect, it, vi} from 'vitest'

import {createCompressor, createDecompressor, zstdImplementations} from '../../../../src/lib/archive/compress.js'
import {ReadBuffers} from '../../../../src/lib/archive/walk.js'
import {liveWorkers, PIECE_BYTES, PoolCompressor, zstdBound} from '../../../../src/lib/archive/zstd-pool.js'
import {mixedBytes, through} from './fixture.js'

const require = createRequire(import.meta.url)
/** zstd-napi's frame functions, to take the output apart frame by frame. */
const napi = require('zstd-napi/binding') as {
  findFrameCompressedSize(frame: Uint8Array): number
  getFrameContentSize(frame: Uint8Array): null | number
}

const readers = zstdImplementations()
const pooled = readers.filter((impl) => impl !== 'codec')
const SMALL = 64 * 1024

/** The frames of a zstd stream: each one's compressed bytes and the content size its header gives. */
function framesOf(bytes: Buffer): {bytes: Buffer; content: null | number}[] {
  const frames = []
  for (let at = 0; at < bytes.length;) {
    const size = napi.findFrameCompressedSize(bytes.subarray(at))
    frames.push({bytes: bytes.subarray(at, at + size), content: napi.getFrameContentSize(bytes.subarray(at))})
    at += size
  }

  return frames
}

/** Drains a stream, noting how many workers were running when its first output came. */
function sinkNotingWorkers(): {seen: () => number[]; stream: Writable} {
  const seen: number[] = []
  return {
    seen: () => seen,
    stream: new Writable({
      write(_chunk, _encoding, callback) {
        seen.push(liveWorkers())
        callback()
      },
    }),
  }
}

/**
 * Endless 1 MiB chunks; `onChunk` sees each chunk's number.
 * @yields the same chunk, forever
 */
function* endless(onChunk: (n: number) => void): Generator<Buffer> {
  const chunk = mixedBytes(1024 * 1024)
  for (let n = 0; ; n++) {
    onChunk(n)
    yield chunk
  }
}

describe.each(pooled)('parallel zstd compression with %s', (impl) => {
  const data = mixedBytes(2 * PIECE_BYTES + 12_345)

  it.each(readers)('writes independent frames of PIECE_BYTES that the %s decompressor reads', async (reader) => {
    const compressed = await through(data, createCompressor(3, impl, {parallelism: 2}))
    const frames = framesOf(compressed)
    expect(frames.map((f) => f.content)).toEqual([PIECE_BYTES, PIECE_BYTES, 12_345])
    // Each frame is whole by itself: a reader can take them in parallel.
    const alone = await Promise.all(frames.map(async (f) => through(f.bytes, createDecompressor(reader))))
    expect(Buffer.concat(alone).equals(data)).toBe(true)
    expect((await through(compressed, createDecompressor(reader))).equals(data)).toBe(true)
    expect(liveWorkers()).toBe(0)
  })

  it('keeps the order of the pieces when one worker is much slower than the other', async () => {
    const input = mixedBytes(40 * SMALL + 7)
    const compressed = await through(
      input,
      createCompressor(3, impl, {parallelism: 2, pieceBytes: SMALL, testing: {delayMs: [25, 0]}}),
    )
    expect(framesOf(compressed)).toHaveLength(41)
    expect((await through(compressed, createDecompressor())).equals(input)).toBe(true)
  })

  it('with parallelism 1 writes the same bytes on the calling thread, starting no worker', async () => {
    const inline = sinkNotingWorkers()
    const onOne = createCompressor(3, impl, {parallelism: 1, pieceBytes: SMALL})
    const chunks: Buffer[] = []
    onOne.on('data', (chunk: Buffer) => chunks.push(chunk))
    await pipeline(Readable.from([data]), onOne, inline.stream)
    expect(inline.seen().length).toBeGreaterThan(1)
    expect(inline.seen().every((n) => n === 0)).toBe(true)

    const pooledSink = sinkNotingWorkers()
    const onTwo = createCompressor(3, impl, {parallelism: 2, pieceBytes: SMALL})
    const pooledChunks: Buffer[] = []
    onTwo.on('data', (chunk: Buffer) => pooledChunks.push(chunk))
    await pipeline(Readable.from([data]), onTwo, pooledSink.stream)
    expect(pooledSink.seen()[0]).toBe(2)
    expect(Buffer.concat(pooledChunks).equals(Buffer.concat(chunks))).toBe(true)
  })

  it('starts its workers at once when told more than a piece is coming, and stops them if never used', async () => {
    const told = [PIECE_BYTES, undefined].map((expectedBytes) =>
      createCompressor(3, impl, {expectedBytes, parallelism: 2}),
    )
    const onOne = createCompressor(3, impl, {expectedBytes: 4 * PIECE_BYTES, parallelism: 1})
    expect(liveWorkers()).toBe(0)
    const early = createCompressor(3, impl, {expectedBytes: PIECE_BYTES + 1, parallelism: 2})
    expect(liveWorkers()).toBe(2)
    for (const c of [...told, onOne, early]) c.destroy()
    await vi.waitFor(() => expect(liveWorkers()).toBe(0))
    // The same frames as a pool that starts them with its first full piece.
    const lazily = await through(data, createCompressor(3, impl, {parallelism: 2}))
    const atOnce = await through(data, createCompressor(3, impl, {expectedBytes: data.length, parallelism: 2}))
    expect(atOnce.equals(lazily)).toBe(true)
    expect(liveWorkers()).toBe(0)
  })

  it.each([1, 2])(
    'with a reader that says what it is done with (parallelism %i), compresses into its buffers again: the same bytes',
    async (parallelism) => {
      const input = mixedBytes(24 * SMALL + 5)
      const plain = await through(input, createCompressor(3, impl, {parallelism, pieceBytes: SMALL}))
      const c = createCompressor(3, impl, {parallelism, pieceBytes: SMALL, releasing: true}) as PoolCompressor
      const copies: Buffer[] = []
      let position = 0
      // In writes smaller than a piece, as the tar packer gives them (one write of it all would
      // start every piece at once).
      const writes: Buffer[] = []
      for (let at = 0; at < input.length; at += SMALL / 4) writes.push(input.subarray(at, at + SMALL / 4))
      await pipeline(
        Readable.from(writes),
        c,
        new Writable({
          write(chunk: Buffer, _encoding, callback) {
            // Copied, then said to be done with; the view is spoiled, as a reused buffer would be.
            copies.push(Buffer.from(chunk))
            position += chunk.length
            c.doneWith(position)
            chunk.fill(0xee)
            callback()
          },
        }),
      )
      expect(Buffer.concat(copies).equals(plain)).toBe(true)
      // 25 frames; those in flight at the start need buffers of their own.
      expect(c.framesReused).toBeGreaterThanOrEqual(25 - 2 * parallelism - 2)
      expect(liveWorkers()).toBe(0)
    },
  )

  it('with a reader that says what it is done with, lends no buffer for a small frame: it is copied out', async () => {
    // Zeros: each 64 KiB piece is a frame of a few bytes, which must not hold a buffer of zstdBound(piece).
    const c = createCompressor(3, impl, {parallelism: 2, pieceBytes: SMALL, releasing: true}) as PoolCompressor
    const held: number[] = []
    let position = 0
    const writes = Array.from({length: 40}, () => Buffer.alloc(SMALL / 4))
    await pipeline(
      Readable.from(writes),
      c,
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          held.push(chunk.buffer.byteLength)
          position += chunk.length
          c.doneWith(position)
          callback()
        },
      }),
    )
    expect(held).toHaveLength(10)
    expect(Math.max(...held)).toBeLessThan(zstdBound(SMALL) / 8)
    // The buffers went back unlent, and the next pieces were compressed into them.
    expect(c.framesReused).toBeGreaterThanOrEqual(10 - 2 * 2 - 2)
  })

  it.each([1, 2])('compresses an empty input (parallelism %i) into one empty frame', async (parallelism) => {
    const compressed = await through(Buffer.alloc(0), createCompressor(3, impl, {parallelism}))
    expect(framesOf(compressed).map((f) => f.content)).toEqual([0])
    for (const reader of readers) expect(await through(compressed, createDecompressor(reader))).toHaveLength(0)
  })

  it('fails with the compression error of a piece, and leaves no worker running', async () => {
    const compressor = createCompressor(3, impl, {
      parallelism: 2,
      pieceBytes: SMALL,
      testing: {faultAt: 5, faultKind: 'throw'},
    })
    await expect(through(data, compressor)).rejects.toThrow('zstd compression failed: injected fault in piece 5')
    await vi.waitFor(() => expect(liveWorkers()).toBe(0))
  })

  it('fails when a worker dies, and leaves no worker running', async () => {
    const compressor = createCompressor(3, impl, {
      parallelism: 2,
      pieceBytes: SMALL,
      testing: {faultAt: 3, faultKind: 'exit'},
    })
    await expect(through(data, compressor)).rejects.toThrow('a zstd worker exited (code 3) before the end')
    await vi.waitFor(() => expect(liveWorkers()).toBe(0))
  })

  it('stops on an abort, whatever is in flight, and leaves no worker running', async () => {
    const controller = new AbortController()
    const source = Readable.from(endless((n) => n === 12 && controller.abort()))
    const compressor = createCompressor(3, impl, {parallelism: 2, testing: {delayMs: [5, 5]}})
    const sink = new Writable({write: (_chunk, _encoding, callback) => callback()})
    await expect(pipeline(source, compressor, sink, {signal: controller.signal})).rejects.toThrow(/abort/i)
    expect(compressor.destroyed).toBe(true)
    await vi.waitFor(() => expect(liveWorkers()).toBe(0))
  })

  it('refuses a parallelism outside 1-64 before starting anything', () => {
    for (const parallelism of [0, 65, 1.5, -1]) {
      expect(() => createCompressor(3, impl, {parallelism})).toThrow(
        expect.objectContaining({
          exitCode: 2,
          message: `--parallelism ${parallelism} is not a whole number from 1 to 64`,
        }),
      )
    }

    expect(liveWorkers()).toBe(0)
  })
})

describe('read buffers handed back by the compressor', () => {
  it('lends a buffer again only once it came back, and takes it back once per loan', () => {
    const buffers = new ReadBuffers(4)
    const a = buffers.take()
    buffers.give(a.subarray(0, 10))
    buffers.give(a) // the same loan again: ignored
    buffers.give(Buffer.alloc(a.length)) // never lent: ignored
    const b = buffers.take()
    expect(b.buffer).toBe(a.buffer)
    expect(buffers.take().buffer).not.toBe(a.buffer)
  })

  it.each(pooled)('%s: each chunk is handed back once its bytes are copied', async (impl) => {
    const chunks = Array.from({length: 9}, (_, i) => mixedBytes(700_000 + i))
    const given: Buffer[] = []
    const compressor = createCompressor(3, impl, {
      parallelism: 2,
      pieceBytes: SMALL * 16,
      recycle(chunk) {
        given.push(chunk)
        chunk.fill(0) // what a reuse would do: the output must not change
      },
    })
    const expected = Buffer.concat(chunks)
    const sink: Buffer[] = []
    await pipeline(
      Readable.from(chunks.map((c) => Buffer.from(c))),
      compressor,
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          sink.push(chunk)
          callback()
        },
      }),
    )
    expect(given).toHaveLength(9)
    expect((await through(Buffer.concat(sink), createDecompressor())).equals(expected)).toBe(true)
  })
})
