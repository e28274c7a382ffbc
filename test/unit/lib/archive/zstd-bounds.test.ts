/**
 * The decompressor's memory is bounded whatever the input: a zstd bomb (GiBs of zeros in a few
 * KiB) is inflated only as fast as it is read, and frames that ask for a window over 128 MiB are
 * refused from their header. Both for every implementation that loads here.
 */
import {spawnSync} from 'node:child_process'
import {once} from 'node:events'
import {existsSync} from 'node:fs'
import {setTimeout as sleep} from 'node:timers/promises'
import {beforeAll, describe, expect, it} from 'vitest'

import {
  createCompressor,
  createCompressorWithWindow,
  createDecompressor,
  maxWindowLog,
  zstdImplementations,
} from '../../../../src/lib/archive/compress.js'
import {mixedBytes, through} from './fixture.js'

const MiB = 1024 * 1024
/** 32 times what may wait in the stream: enough to show it is not inflated ahead (and cheap on a loaded CI leg) */
const BOMB = 256 * MiB
let bomb: Buffer

beforeAll(async () => {
  // 256 MiB of zeros, compressed by our own compressor (independent 2 MiB frames): a few KiB.
  const zeros = Buffer.alloc(8 * MiB)
  const compressor = createCompressor(3)
  const chunks: Buffer[] = []
  const collected = (async () => {
    for await (const chunk of compressor) chunks.push(chunk as Buffer)
  })()
  for (let i = 0; i < BOMB / zeros.length; i++) {
    if (!compressor.write(zeros)) await once(compressor, 'drain')
  }

  compressor.end()
  await collected
  bomb = Buffer.concat(chunks)
}, 60_000)

describe.each(zstdImplementations())('zstd %s decompression', (impl) => {
  it('inflates a bomb only as fast as it is read', async () => {
    expect(bomb.length).toBeLessThan(MiB)
    const d = createDecompressor(impl)
    d.write(bomb)
    // Nobody reads: what waits in the stream must stay small, not 256 MiB.
    await sleep(300)
    expect(d.readableLength).toBeLessThan(8 * MiB)
    // Then everything comes out, in bounded chunks, as it is read.
    let total = 0
    let largest = 0
    d.end()
    for await (const chunk of d) {
      total += (chunk as Buffer).length
      largest = Math.max(largest, (chunk as Buffer).length)
    }

    expect(total).toBe(BOMB)
    expect(largest).toBeLessThanOrEqual(4 * MiB)
  }, 60_000)

  it('refuses a frame asking for a window over 128 MiB, from its header', async () => {
    const wide = await through(mixedBytes(100_000), createCompressorWithWindow(28))
    // The frame is a valid one: the zstd CLI reads it when allowed a large window.
    if (existsSync('/usr/bin/zstd')) {
      const cli = spawnSync('/usr/bin/zstd', ['-d', '-c', '--memory=512MB'], {input: wide})
      expect(cli.status).toBe(0)
    }

    await expect(through(wide, createDecompressor(impl))).rejects.toThrow(
      new RegExp(`asks for a 256 MiB window, more than the ${2 ** (maxWindowLog(impl) - 20)} MiB this reader allows`),
    )
    // The widest it accepts still works (128 MiB; 8 MiB in zstd-codec's 16 MiB heap).
    const ok = await through(mixedBytes(100_000), createCompressorWithWindow(maxWindowLog(impl)))
    expect((await through(ok, createDecompressor(impl))).length).toBe(100_000)
  })

  it('refuses a stream cut inside a frame', async () => {
    const whole = await through(mixedBytes(300_000), createCompressor(3))
    await expect(through(whole.subarray(0, -10), createDecompressor(impl))).rejects.toThrow(
      /ended in the middle of a frame|unexpected end|corrupt/,
    )
  })
})
