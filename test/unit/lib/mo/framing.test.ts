import {describe, expect, it} from 'vitest'

import {
  crc32c,
  digestBytes,
  frame,
  FRAME_BLOCK_SIZE,
  FRAME_CONTENT_SIZE,
  matchingForm,
  MoFileHasher,
  sidecarDigest,
  unframe,
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
