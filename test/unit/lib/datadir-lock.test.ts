/**
 * The data dir's lock on real files: a second holder is refused with exit 4, a forged lock (its
 * process gone) cannot make the takeover remove anything but our own leftovers' names.
 */
import {spawnSync} from 'node:child_process'
import {mkdir, readdir, readFile, symlink, utimes, writeFile} from 'node:fs/promises'
import {hostname} from 'node:os'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {cleanupDataDir} from '../../../src/lib/cleanup.js'
import {lockDataDir} from '../../../src/lib/datadir-lock.js'
import {STALE_REMOVAL_MS} from '../../../src/lib/repo/backend.js'
import {removalMarker} from '../../../src/lib/repo/fs.js'
import {tempDir} from '../../helpers/cli.js'

let tmp: {cleanup: () => Promise<void>; path: string}
beforeEach(async () => {
  tmp = await tempDir()
})
afterEach(async () => tmp.cleanup())

/** A lock's state as a `br restore` run of tmp/mo-data writes it, by default one whose process is gone; `over` changes fields. */
const restoreRun = (over: Record<string, unknown> = {}) =>
  JSON.stringify({
    command: 'br restore',
    dataDir: join(tmp.path, 'mo-data'),
    host: hostname(),
    pid: spawnSync('true').pid,
    scratch: [],
    startedAt: new Date().toISOString(),
    token: 'x',
    ...over,
  })

describe('lockDataDir', () => {
  it('refuses a second holder with exit 4 naming the first, and is free again once released', async () => {
    const dataDir = join(tmp.path, 'mo-data')
    const first = await lockDataDir(dataDir, {backupId: 'b1', command: 'br restore'})
    await expect(lockDataDir(dataDir, {command: 'br backup'})).rejects.toMatchObject({
      exitCode: 4,
      message: expect.stringContaining(`is locked by br restore b1 (pid ${process.pid}`),
    })
    await first.release()
    const second = await lockDataDir(dataDir, {command: 'br backup'})
    await second.release()
    expect(await readdir(tmp.path)).toEqual([])
  })

  it("a dead holder's lock another run is taking over (its fresh removal marker) is held: exit 4 naming both; an old marker is taken over", async () => {
    const dataDir = join(tmp.path, 'mo-data')
    const lockPath = join(tmp.path, '.mo-data.moctl-br.lock')
    const dead = restoreRun()
    await writeFile(lockPath, dead)
    const marker = removalMarker(lockPath, Buffer.from(dead))
    await writeFile(marker, '')
    const refused = lockDataDir(dataDir, {command: 'br backup'})
    await expect(refused).rejects.toMatchObject({exitCode: 4})
    await expect(refused).rejects.toThrow(
      / is locked by .*, whose lock another run is taking over \(pid \d+ no longer runs\)$/,
    )
    expect(await readFile(lockPath, 'utf8')).toBe(dead)
    const old = new Date(Date.now() - STALE_REMOVAL_MS - 60_000)
    await utimes(marker, old, old)
    const lock = await lockDataDir(dataDir, {command: 'br backup'})
    await lock.release()
    expect(await readdir(tmp.path)).toEqual([])
  })

  it('refuses a dangling symlink where the lock is, as a damaged lock (exit 4), without spinning', async () => {
    const dataDir = join(tmp.path, 'mo-data')
    const lockPath = join(tmp.path, '.mo-data.moctl-br.lock')
    await symlink(join(tmp.path, 'nowhere'), lockPath)
    await expect(lockDataDir(dataDir, {command: 'br backup'})).rejects.toMatchObject({
      exitCode: 4,
      message: `data directory ${dataDir} has a damaged lock ${lockPath}`,
    })
  })

  it("a dead holder's lock naming directories that are not ours removes none of them", async () => {
    const dataDir = join(tmp.path, 'mo-data')
    const precious = join(tmp.path, 'precious')
    await mkdir(precious)
    await mkdir(join(tmp.path, 'mo-data'))
    await writeFile(
      join(tmp.path, '.mo-data.moctl-br.lock'),
      restoreRun({
        scratch: [precious, dataDir, tmp.path],
        swap: {phase: 'swapped', previous: precious, staging: precious},
      }),
    )
    const warnings: string[] = []
    const lock = await lockDataDir(dataDir, {command: 'br cleanup', onWarning: (w) => warnings.push(w)})
    await lock.release()
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/^took over the lock of .* no longer runs$/)
    expect((await readdir(tmp.path)).sort()).toEqual(['mo-data', 'precious'])
  })

  it('is refreshed while held (a heartbeat beside the changes of state), and the beat stops at release', async () => {
    const dataDir = join(tmp.path, 'mo-data')
    const lockFile = join(tmp.path, '.mo-data.moctl-br.lock')
    const lock = await lockDataDir(dataDir, {command: 'br restore', refreshMs: 100})
    const first = JSON.parse(await readFile(lockFile, 'utf8'))
    expect(first.refreshedAt).toBe(first.startedAt)
    await lock.update({backupId: 'b2'})
    await sleep(350)
    const later = JSON.parse(await readFile(lockFile, 'utf8'))
    expect(later).toMatchObject({backupId: 'b2', startedAt: first.startedAt, token: first.token})
    expect(Date.parse(later.refreshedAt)).toBeGreaterThan(Date.parse(first.refreshedAt) + 200)
    await lock.release()
    await sleep(250)
    expect(await readdir(tmp.path)).toEqual([])
  })

  it('a lock taken over by another run is never written over: the heartbeat stops, says so, and updates fail with exit 4', async () => {
    const dataDir = join(tmp.path, 'mo-data')
    const lockFile = join(tmp.path, '.mo-data.moctl-br.lock')
    const warnings: string[] = []
    const lock = await lockDataDir(dataDir, {command: 'br restore', onWarning: (w) => warnings.push(w), refreshMs: 100})
    // What a run on another host writes after finding ours unrefreshed for 30 minutes.
    const theirs = restoreRun({host: 'elsewhere', pid: 1, token: 'theirs'})
    await writeFile(lockFile, theirs)
    await sleep(450)
    expect(await readFile(lockFile, 'utf8')).toBe(theirs)
    // Said once: the beat stopped.
    expect(warnings).toEqual([
      `the lock of ${dataDir} is no longer this run's (another writer took it over): its refresh stopped, and the run stops before its next step that needs it`,
    ])
    expect(lock.lost).toBe('another writer took it over')
    await expect(lock.update({swap: {phase: 'swapping', previous: null, staging: 'x'}})).rejects.toMatchObject({
      code: 'locked',
      exitCode: 4,
      message: `lost the lock of data directory ${dataDir} (another writer took it over): this run stops here`,
    })
    expect(lock.state.swap).toBeUndefined()
    await lock.release()
    expect(await readFile(lockFile, 'utf8')).toBe(theirs)
  })

  it('keep() leaves the lock in place with its state, and stops its heartbeat', async () => {
    const dataDir = join(tmp.path, 'mo-data')
    const lockFile = join(tmp.path, '.mo-data.moctl-br.lock')
    const lock = await lockDataDir(dataDir, {command: 'br backup', refreshMs: 100})
    await lock.update({service: {describe: 'fake', start: 'start it'}})
    await lock.keep()
    const kept = await readFile(lockFile, 'utf8')
    await sleep(350)
    // No beat rewrote it since.
    expect(await readFile(lockFile, 'utf8')).toBe(kept)
    expect(JSON.parse(kept)).toMatchObject({service: {describe: 'fake', start: 'start it'}})
    await lock.release()
    expect(await readFile(lockFile, 'utf8')).toBe(kept)
  })

  it('br cleanup removes the lock temp files a run killed in the middle of a heartbeat or a takeover left beside the data dir', async () => {
    const dataDir = join(tmp.path, 'mo-data')
    await mkdir(dataDir)
    // A heartbeat's temp file, a removal marker, and the empty temp file of a marker that a taker
    // killed between writing and linking it left (fs.ts linkNew).
    const temps = [
      '.mo-data.moctl-br.lock.tmp-0123456789ab',
      '.mo-data.moctl-br.lock.removing-ba9876543210',
      '.mo-data.moctl-br.lock.removing-ba9876543210.tmp-00112233aabb',
    ]
    for (const name of temps) await writeFile(join(tmp.path, name), '{}')
    const dry = await cleanupDataDir(dataDir, {dryRun: true})
    expect(dry.removed).toEqual(temps.map((name) => join(tmp.path, name)).sort())
    const done = await cleanupDataDir(dataDir, {dryRun: false})
    expect(done.removed).toEqual(dry.removed)
    expect(await readdir(tmp.path)).toEqual(['mo-data'])
  })
})
