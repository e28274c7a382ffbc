/**
 * keepFreedMemory (src/lib/archive/heap.ts, the built one): after it, a process that allocates
 * 40 MiB in 1 MiB buffers, frees them and allocates them again finds the memory still in malloc's
 * heap (a few hundred page faults the second time, at most half of the first under load), where a
 * process without it faults the 40 MiB in again (~10,000). glibc only: other libcs have no such thresholds, and it is skipped by name.
 */
import {spawnSync} from 'node:child_process'
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'
import {describe, expect, it} from 'vitest'

import {ROOT} from '../helpers/cli.js'

const onGlibc = Boolean(
  (process.report?.getReport() as {header?: {glibcVersionRuntime?: string}}).header?.glibcVersionRuntime,
)

/** Page faults of each of three rounds of 40 × 1 MiB allocated, touched and freed, in a fresh node. */
function rounds(teach: boolean): number[] {
  const heap = pathToFileURL(join(ROOT, 'dist', 'lib', 'archive', 'heap.js')).href
  const script = `
    const {keepFreedMemory} = await import(${JSON.stringify(heap)})
    if (${teach}) { keepFreedMemory(); globalThis.gc() }
    const faults = []
    for (let round = 0; round < 3; round++) {
      const before = process.resourceUsage().minorPageFault
      let held = []
      for (let i = 0; i < 40; i++) held.push(Buffer.allocUnsafeSlow(1 << 20).fill(1))
      held = null
      // V8 frees the buffers' memory on a background thread: under load (CI), it can still be
      // freeing when the next round allocates, which then faults fresh pages in. Let it finish.
      for (let settle = 0; settle < 3; settle++) {
        globalThis.gc()
        await new Promise((resolve) => setTimeout(resolve, 30))
      }
      faults.push(process.resourceUsage().minorPageFault - before)
    }
    console.log(JSON.stringify(faults))`
  const env = {...process.env}
  // The tests' own malloc settings (scripts/test.sh) would decide it instead.
  delete env.GLIBC_TUNABLES
  const run = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {encoding: 'utf8', env})
  expect(run.stderr).toBe('')
  return JSON.parse(run.stdout) as number[]
}

describe('keepFreedMemory', () => {
  it.skipIf(!onGlibc)('keeps freed buffers in the heap: a later round faults a fraction of the first (glibc)', () => {
    const plain = rounds(false)
    const taught = rounds(true)
    // 40 MiB is ~10,240 pages: both fault them in the first time.
    expect(plain[0]).toBeGreaterThan(9000)
    expect(taught[0]).toBeGreaterThan(9000)
    // Without it, glibc gives the 40 MiB back and the second round faults them in again.
    expect(plain[1]).toBeGreaterThan(5000)
    // With it, most of the 40 MiB is still in the heap: alone here a tenth or less of the first
    // round's faults. Under a loaded run a round can fault more (V8 frees buffers on background
    // threads and the heap's top moves: 2,818 once in a full `npm test`), so the better of the
    // two later rounds counts, against half of the run without it (~10,200 without; a no-op
    // keepFreedMemory faults as many).
    const later = Math.min(taught[1], taught[2])
    expect(later).toBeLessThan(taught[0] / 2)
    expect(later).toBeLessThan(plain[1] / 2)
  })
})
