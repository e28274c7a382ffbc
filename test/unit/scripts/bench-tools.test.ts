import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {median, parseSize, stepTimes} from '../../../bench/measure.mjs'
import {profileRun} from '../../../bench/profile.mjs'
import {tempDir} from '../../helpers/cli.js'

let tmp: {cleanup: () => Promise<void>; path: string}
beforeAll(async () => {
  tmp = await tempDir()
})
afterAll(async () => tmp.cleanup())

const total = (ms: Record<string, number>) => Object.values(ms).reduce((a, b) => a + b, 0)
/** the stage with the most time */
const largest = (ms: Record<string, number>) => Object.entries(ms).sort((a, b) => b[1] - a[1])[0][0]

describe('bench/measure.mjs', () => {
  it('reads the plain log of a flow back into milliseconds per step', () => {
    const log = [
      '2026-12-01T10:06:56Z Scan data directory: started',
      '2026-12-01T10:06:57Z Scan data directory: 536 files, 1.0 GiB',
      '2026-12-01T10:06:57Z Scan data directory: done in 98ms',
      '2026-12-01T10:07:05Z Pack, compress and encrypt: done in 8.3s',
      '2026-12-01T10:08:05Z Publish: done in 1m15s',
    ].join('\n')
    expect(stepTimes(log)).toEqual({'Pack, compress and encrypt': 8300, Publish: 75_000, 'Scan data directory': 98})
  })

  it('takes medians and reads sizes as the generator writes them', () => {
    expect(median([3, 1, 2])).toBe(2)
    expect(median([4, 1, 2, 3])).toBe(2.5)
    expect(parseSize('8GiB')).toBe(8 * 1024 ** 3)
    expect(parseSize('256MiB')).toBe(256 * 1024 ** 2)
    expect(parseSize('eight')).toBeNaN()
  })
})

describe('bench/profile.mjs', () => {
  it('puts a process that hashes into the sha256 stage, and one that compresses into zstd', async () => {
    const script = join(tmp.path, 'work.mjs')
    await writeFile(
      script,
      [
        "import {createHash} from 'node:crypto'",
        "import {deflateSync} from 'node:zlib'",
        'const block = Buffer.alloc(16 * 1024 * 1024, 7)',
        "if (process.argv[2] === 'hash') for (let i = 0; i < 20; i++) createHash('sha256').update(block).digest()",
        // zlib standing in for zstd (Node 24's zstd is node:zlib's)
        'else for (let i = 0; i < 20; i++) deflateSync(block, {level: 9})',
      ].join('\n'),
    )
    const hashing = profileRun('hash', [script, 'hash'], join(tmp.path, 'hash'))
    expect(hashing.threads).toBe(1)
    // The biggest stage, and most of the time: on a machine busy with the rest of the suite, the
    // start of Node and the 16 MiB fill weigh more (0.49 of the time was sha256's once), so not 0.5.
    expect(largest(hashing.ms)).toBe('sha256')
    expect(hashing.ms.sha256 / total(hashing.ms)).toBeGreaterThan(0.35)
    expect(hashing.processMs).toBeGreaterThan(0)
    const compressing = profileRun('compress', [script, 'compress'], join(tmp.path, 'compress'))
    expect(largest(compressing.ms)).toBe('zstd')
    expect(compressing.ms.zstd / total(compressing.ms)).toBeGreaterThan(0.35)
  })
})
