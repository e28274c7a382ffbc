/**
 * The frame splitter against real zstd output: whole frames come out as they went in, whatever the
 * input's chunking; frames without a content size (or too large) stream; skippable frames go;
 * malformed or truncated input throws.
 */
import {spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {createRequire} from 'node:module'
import {describe, expect, it} from 'vitest'

import {type FramePiece, FrameSplitter} from '../../../../src/lib/archive/zstd-frames.js'
import {mixedBytes} from './fixture.js'

const require = createRequire(import.meta.url)
const napi = require('zstd-napi') as {compress(b: Buffer, p?: {compressionLevel?: number}): Buffer}
const MiB = 1024 * 1024

const one = (bytes: Buffer) => napi.compress(bytes, {compressionLevel: 3})

function split(input: Buffer, step: number, maxPooled = 16 * MiB): FramePiece[] {
  const splitter = new FrameSplitter({budget: 2 * MiB, maxPooled, maxWindowLog: 27})
  const units: FramePiece[] = []
  for (let i = 0; i < input.length; i += step) units.push(...splitter.push(input.subarray(i, i + step)))
  if (!splitter.atFrameBoundary) throw new Error('the zstd stream ended in the middle of a frame')
  return units
}

/** zstd CLI output: checksummed frames, with a content size only when told the size. */
function cli(bytes: Buffer, withSize: boolean): Buffer {
  const args = ['-3', '-q', '-c', '--check', ...(withSize ? [`--stream-size=${bytes.length}`] : [])]
  const run = spawnSync('/usr/bin/zstd', args, {input: bytes, maxBuffer: 64 * MiB})
  expect(run.status).toBe(0)
  return run.stdout
}

describe('FrameSplitter', () => {
  it('gives a single frame whole, with its content size', () => {
    const data = mixedBytes(3 * MiB + 5)
    const frame = one(data)
    for (const step of [1 << 16, 7, frame.length]) {
      const units = split(frame, step)
      expect(units).toHaveLength(1)
      expect(units[0]).toMatchObject({contentSize: data.length, kind: 'frame'})
      expect(units[0].data.equals(frame)).toBe(true)
    }
  })

  it('cuts many frames (raw, RLE and compressed blocks, empty ones) at their boundaries', () => {
    const pieces = [
      mixedBytes(MiB),
      Buffer.alloc(2 * MiB), // RLE blocks
      Buffer.from(Array.from({length: 300_000}, (_, i) => (i * 7919) % 251)), // compressible
      Buffer.alloc(0),
      Buffer.from('x'),
      randomBytes(700_000), // raw blocks
    ]
    const frames = pieces.map((p) => one(p))
    const stream = Buffer.concat(frames)
    for (const step of [3, 1000, 65_536]) {
      const units = split(stream, step)
      expect(units.map((u) => u.kind)).toEqual(frames.map(() => 'frame'))
      for (const [i, u] of units.entries()) {
        expect(u.data.equals(frames[i])).toBe(true)
        expect(u.kind === 'frame' && u.contentSize).toBe(pieces[i].length)
      }
    }

    // Byte by byte: every header split across pushes.
    const small = Buffer.concat(frames.slice(3))
    expect(split(small, 1).map((u) => u.kind === 'frame' && u.contentSize)).toEqual([0, 1, 700_000])
  })

  it('reads checksummed frames and drops skippable ones', () => {
    const a = mixedBytes(500_000)
    const b = mixedBytes(300_000)
    const skippable = Buffer.concat([
      Buffer.from([0x5a, 0x2a, 0x4d, 0x18]),
      Buffer.from([5, 0, 0, 0]),
      Buffer.from('hello'),
    ])
    const empty = Buffer.from([0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0])
    const fa = cli(a, true)
    const fb = cli(b, true)
    const units = split(Buffer.concat([skippable, fa, empty, fb, skippable]), 999)
    expect(units.map((u) => u.kind === 'frame' && u.contentSize)).toEqual([a.length, b.length])
    expect(units[0].data.equals(fa)).toBe(true)
    expect(units[1].data.equals(fb)).toBe(true)
  })

  it('streams a frame with no content size, or a larger one than it keeps whole', () => {
    const data = mixedBytes(MiB)
    for (const [frame, maxPooled] of [
      [cli(data, false), 16 * MiB],
      [one(data), 1000],
    ] as const) {
      const units = split(Buffer.concat([frame, one(Buffer.from('after'))]), 10_000, maxPooled)
      const streamed = units.filter((u) => u.kind === 'stream')
      expect(streamed.length).toBeGreaterThan(1)
      expect(units.slice(0, -1).every((u) => u.kind === 'stream')).toBe(true)
      expect(Buffer.concat(streamed.map((u) => u.data)).equals(frame)).toBe(true)
      expect(units.at(-1)).toMatchObject({contentSize: 5, kind: 'frame'})
    }
  })

  it('refuses truncated input, a bad magic, a reserved block type and a huge window', () => {
    const frame = one(mixedBytes(200_000))
    expect(() => split(frame.subarray(0, -1), 4096)).toThrow(/ended in the middle of a frame/)
    expect(() => split(frame.subarray(0, 3), 4096)).toThrow(/ended in the middle of a frame/)
    expect(() => split(Buffer.from('not zstd at all'), 4096)).toThrow(/not a zstd frame/)
    // A frame header, then a block header of the reserved type 3.
    const reserved = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x50, 0b0000_0111, 0, 0])
    expect(() => split(reserved, 4096)).toThrow(/reserved block type/)
    // Window_Descriptor exponent 31: a 2 GiB window.
    const huge = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, (31 - 10) << 3])
    expect(() => split(huge, 4096)).toThrow(/window/)
    // Single segment, 8-byte content size of 1 TiB: its window is that size.
    const fcs = Buffer.alloc(8)
    fcs.writeBigUInt64LE(1n << 40n)
    expect(() => split(Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0xe0]), fcs]), 4096)).toThrow(/window/)
  })

  it('refuses a frame whose compressed bytes outgrow what its content size allows', () => {
    // Declares 4 bytes of content, then thousands of empty raw blocks: never held whole.
    const header = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x20, 4])
    const empties = Buffer.alloc(3 * 10_000) // raw, not last, size 0
    const last = Buffer.from([0b0000_0001, 0, 0]) // raw, last, size 0
    expect(() => split(Buffer.concat([header, empties, last]), 4096)).toThrow(/larger than that content can need/)
  })
})
