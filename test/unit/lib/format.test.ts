import {describe, expect, it} from 'vitest'

import {formatEta, formatProgress, logTimestamp} from '../../../src/lib/format.js'

const GiB = 1024 ** 3

describe('formatProgress', () => {
  it('gives the percent, the counts, the rate and an ETA by bytes', () => {
    const line = formatProgress({bytesDone: GiB, bytesTotal: 4 * GiB, filesDone: 10, filesTotal: 40}, 10_000)
    // A quarter in 10 s: three quarters left at the same rate is 30 s.
    expect(line).toBe('25%, files 10/40, 1.0 GiB/4.0 GiB, 107 MB/s, ETA 30s')
  })

  it('goes by files when the bytes are unknown (a clone), and gives no ETA before a second of work', () => {
    expect(formatProgress({bytesDone: 0, bytesTotal: 0, filesDone: 3, filesTotal: 12}, 500)).toBe('25%, files 3/12')
    expect(formatProgress({bytesDone: 0, bytesTotal: 0, filesDone: 3, filesTotal: 12}, 2000)).toBe(
      '25%, files 3/12, ETA 6s',
    )
  })

  it('never says more than 100% nor an ETA once done, and shows a files count without a known total', () => {
    const line = formatProgress({bytesDone: 5 * GiB, bytesTotal: 4 * GiB, filesDone: 7, filesTotal: 0}, 60_000)
    expect(line).toMatch(/^100%, files 7, 5\.0 GiB\/4\.0 GiB, \d+ MB\/s$/)
  })
})

describe('formatEta', () => {
  it('is to the second, in minutes and hours when long', () => {
    expect(formatEta(44_600)).toBe('45s')
    expect(formatEta(245_000)).toBe('4m05s')
    expect(formatEta(7_380_000)).toBe('2h03m')
  })
})

describe('logTimestamp', () => {
  it('is UTC to the second', () => {
    expect(logTimestamp(Date.UTC(2026, 11, 1, 1, 2, 3, 456))).toBe('2026-12-01T01:02:03Z')
  })
})
