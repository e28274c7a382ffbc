import {Readable, type Transform} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {describe, expect, it} from 'vitest'

import {
  crc32c,
  digestBytes,
  frame,
  FRAME_BLOCK_SIZE,
  FRAME_CONTENT_SIZE,
  FramingStream,
  matchingForm,
  MoFileHasher,
  sidecarDigest,
  unframe,
  UnframingStream,
} from '../../../../src/lib/mo/framing.js'
import {bytesOf, sha256} from './fixture.js'

/** CRC-32C one bit at a time: slow and obviously right. */
function bitwise(bytes: Uint8Array): number {
  let crc = 0xff_ff_ff_ff
  for (const byte of bytes) {
    crc ^= byte
    for (let k = 0; k < 8; k++) crc = crc & 1 ? 0x82_f6_3b_78 ^ (crc >>> 1) : crc >>> 1
  }

  return (crc ^ 0xff_ff_ff_ff) >>> 0
}

describe('framing', () => {
  it('computes CRC-32C (Castagnoli) as Go does', () => {
    // the check value of CRC-32C, and Go's crc32.Checksum of "" with the Castagnoli table
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3_06_92_83)
    expect(crc32c(Buffer.alloc(0))).toBe(0)
  })

  it('matches the published CRC-32C test vectors of RFC 3720 B.4 (iSCSI)', () => {
    const ascending = Buffer.from(Array.from({length: 32}, (_, i) => i))
    expect(crc32c(Buffer.alloc(32))).toBe(0x8a_91_36_aa)
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62_a8_ab_43)
    expect(crc32c(ascending)).toBe(0x46_dd_79_4e)
    expect(crc32c(Buffer.from(ascending).reverse())).toBe(0x11_3f_db_5c)
  })

  it('converts between forms as a stream, whatever the chunk sizes: FramingStream = frame, UnframingStream = unframe', async () => {
    const content = bytesOf('stream', FRAME_CONTENT_SIZE * 5 + 123)
    const through = async (stream: Transform, bytes: Buffer, chunk: number) => {
      const parts: Buffer[] = []
      for (let i = 0; i < bytes.length; i += chunk) parts.push(bytes.subarray(i, i + chunk))
      const out: Buffer[] = []
      await pipeline(Readable.from(parts), stream, async (source: AsyncIterable<Buffer>) => {
        for await (const part of source) out.push(part)
      })
      return Buffer.concat(out)
    }

    for (const chunk of [1, 7, 2044, 2048, 5000, 1 << 20]) {
      expect((await through(new FramingStream(), content, chunk)).equals(frame(content)), `frame, ${chunk}`).toBe(true)
      expect(
        (await through(new UnframingStream('f'), frame(content), chunk)).equals(content),
        `unframe, ${chunk}`,
      ).toBe(true)
    }

    expect((await through(new FramingStream(), Buffer.alloc(0), 1)).length).toBe(0)
    const damaged = frame(content)
    damaged[FRAME_BLOCK_SIZE * 5 + 2] ^= 1
    await expect(through(new UnframingStream('tae/x'), damaged, 4096)).rejects.toThrow(
      'tae/x: CRC-32C frame 5 (bytes 10240-10366) does not hold',
    )
    await expect(through(new UnframingStream('raw'), content, 4096)).rejects.toThrow('raw: CRC-32C frame 0')
  })

  it('computes the same CRC-32C as one bit at a time, at every length around the 8-byte stride', () => {
    for (let size = 0; size < 40; size++) {
      const bytes = bytesOf(`crc ${size}`, size)
      expect(crc32c(bytes), `${size} bytes`).toBe(bitwise(bytes))
    }
  })

  it('frames content in 2048-byte blocks of CRC + 2044 bytes, and reads it back', () => {
    const content = bytesOf('content', FRAME_CONTENT_SIZE * 2 + 10)
    const framed = frame(content)
    expect(framed.length).toBe(FRAME_BLOCK_SIZE * 2 + 4 + 10)
    expect(framed.readUInt32LE(0)).toBe(crc32c(content.subarray(0, FRAME_CONTENT_SIZE)))
    expect(unframe(framed)).toEqual(content)
    expect(unframe(content)).toBeNull()
  })

  it('hashes a framed file the same whatever the chunk sizes', () => {
    const content = bytesOf('chunks', 9000)
    const framed = frame(content)
    for (const chunkSize of [1, 7, 2047, 2048, 2049, 4096, 65_536]) {
      const hasher = new MoFileHasher()
      for (let offset = 0; offset < framed.length; offset += chunkSize) {
        hasher.update(framed.subarray(offset, offset + chunkSize))
      }

      const digest = hasher.digest()
      expect(digest.raw).toEqual({sha256: sha256(framed), size: framed.length})
      expect(digest.framed).toEqual({sha256: sha256(content), size: content.length})
      expect(matchingForm(digest, sha256(content))).toBe('framed')
      expect(matchingForm(digest, sha256(framed))).toBe('raw')
    }
  })

  it('does not read a raw file, nor a framed file with a damaged block, as framed', () => {
    expect(digestBytes(bytesOf('raw', 5000)).framed).toBeNull()
    const damaged = frame(bytesOf('damaged', 5000))
    damaged[FRAME_BLOCK_SIZE + 100] ^= 1
    const digest = digestBytes(damaged)
    expect(digest.framed).toBeNull()
    expect(matchingForm(digest, sha256(bytesOf('damaged', 5000)))).toBeNull()
    // a trailing piece too short to hold a CRC and content is not a frame either
    expect(digestBytes(Buffer.concat([frame(bytesOf('x', 100)), Buffer.from([1, 2, 3])])).framed).toBeNull()
  })

  it('takes an empty file as the empty content in both forms', () => {
    const digest = digestBytes(Buffer.alloc(0))
    expect(digest.framed).toEqual(digest.raw)
  })

  it('reads a sidecar of 32 raw bytes or one 36-byte frame, nothing else', () => {
    const digest = sha256(Buffer.from('x'))
    expect(sidecarDigest(digest)).toEqual(digest)
    expect(sidecarDigest(frame(digest))).toEqual(digest)
    expect(sidecarDigest(digest.subarray(0, 31))).toBeNull()
    expect(sidecarDigest(Buffer.from(digest.toString('hex')))).toBeNull()
    const badFrame = frame(digest)
    badFrame[10] ^= 1
    expect(sidecarDigest(badFrame)).toBeNull()
  })
})
