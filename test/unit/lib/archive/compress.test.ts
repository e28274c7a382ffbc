import {spawnSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {describe, expect, it} from 'vitest'

import {
  compressorName,
  createCompressor,
  createDecompressor,
  zstdImplementation,
  zstdImplementations,
} from '../../../../src/lib/archive/compress.js'
import {needs, skipNote} from '../../../helpers/needs.js'
import {mixedBytes, through} from './fixture.js'

const impls = zstdImplementations()
const ZSTD_CLI = '/usr/bin/zstd'
const NO_ZSTD_CLI = `no ${ZSTD_CLI}: apt-get install -y zstd`
const zstdCli = needs(existsSync(ZSTD_CLI), NO_ZSTD_CLI)
const data = mixedBytes(5 * 1024 * 1024 + 7)

describe('compress', () => {
  it('offers the WebAssembly fallback everywhere and picks the fastest by default', () => {
    expect(impls).toContain('codec')
    expect(impls[0]).toBe(zstdImplementation())
    expect(compressorName()).toMatch(/zstd/)
  })

  for (const writer of impls) {
    for (const reader of impls) {
      it(`${reader} reads what ${writer} writes`, async () => {
        const compressed = await through(data, createCompressor(3, writer))
        expect(compressed.length).toBeLessThan(data.length * 0.6)
        expect(compressed.readUInt32LE(0)).toBe(0xfd_2f_b5_28) // the zstd frame magic
        const back = await through(compressed, createDecompressor(reader))
        expect(back.equals(data)).toBe(true)
      })
    }

    it.skipIf(!zstdCli)(`the zstd CLI reads what ${writer} writes${skipNote(zstdCli, NO_ZSTD_CLI)}`, async () => {
      const compressed = await through(data, createCompressor(3, writer))
      const cli = spawnSync('/usr/bin/zstd', ['-d', '-c'], {input: compressed, maxBuffer: 64 * 1024 * 1024})
      expect(cli.status).toBe(0)
      expect(cli.stdout.equals(data)).toBe(true)
    })

    it.skipIf(!zstdCli)(`${writer} reads what the zstd CLI writes${skipNote(zstdCli, NO_ZSTD_CLI)}`, async () => {
      const cli = spawnSync('/usr/bin/zstd', ['-3', '-c'], {input: data, maxBuffer: 64 * 1024 * 1024})
      expect(cli.status).toBe(0)
      expect((await through(cli.stdout, createDecompressor(writer))).equals(data)).toBe(true)
    })

    it(`${writer} compresses an empty stream into a frame that decompresses to nothing`, async () => {
      const compressed = await through(Buffer.alloc(0), createCompressor(3, writer))
      expect(compressed.length).toBeGreaterThan(0)
      expect((await through(compressed, createDecompressor(writer))).length).toBe(0)
    })
  }

  it('zstd-codec survives writes far larger than its 16 MiB heap, many times over', async () => {
    const big = mixedBytes(24 * 1024 * 1024)
    for (let i = 0; i < 3; i++) {
      // One 24 MiB write: sliced inside, else the WebAssembly module aborts with OOM.
      const compressed = await through(big, createCompressor(1, 'codec'))
      expect((await through(compressed, createDecompressor('codec'))).equals(big)).toBe(true)
    }
  })

  for (const impl of impls.filter((i) => i !== 'codec')) {
    it(`${impl} fails on a truncated frame`, async () => {
      const compressed = await through(data, createCompressor(3, impl))
      await expect(through(compressed.subarray(0, -10), createDecompressor(impl))).rejects.toThrow()
    })
  }

  it('fails on bytes that are not zstd', async () => {
    for (const impl of impls) {
      await expect(
        through(Buffer.from('definitely not a zstd frame, just text'), createDecompressor(impl)),
      ).rejects.toThrow()
    }
  })

  it('refuses levels outside 1-19', () => {
    expect(() => createCompressor(0)).toThrow(/level 0 is out of range/)
    expect(() => createCompressor(23)).toThrow(/out of range/)
    expect(() => createCompressor(2.5)).toThrow(/out of range/)
  })
})
