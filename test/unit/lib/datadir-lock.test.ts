/**
 * The data dir's lock on real files: a second holder is refused with exit 4, a forged lock (its
 * process gone) cannot make the takeover remove anything but our own leftovers' names.
 */
import {spawnSync} from 'node:child_process'
import {mkdir, readdir, readFile, writeFile} from 'node:fs/promises'
import {hostname} from 'node:os'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {lockDataDir} from '../../../src/lib/datadir-lock.js'
import {tempDir} from '../../helpers/cli.js'

let tmp: {cleanup: () => Promise<void>; path: string}
beforeEach(async () => {
  tmp = await tempDir()
})
afterEach(async () => tmp.cleanup())

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

  it("a dead holder's lock naming directories that are not ours removes none of them", async () => {
    const dataDir = join(tmp.path, 'mo-data')
    const precious = join(tmp.path, 'precious')
    await mkdir(precious)
    await mkdir(join(tmp.path, 'mo-data'))
    await writeFile(
      join(tmp.path, '.mo-data.moctl-br.lock'),
      JSON.stringify({
        command: 'br restore',
        dataDir,
        host: hostname(),
        pid: spawnSync('true').pid,
        scratch: [precious, dataDir, tmp.path],
        startedAt: new Date().toISOString(),
        swap: {phase: 'swapped', previous: precious, staging: precious},
        token: 'x',
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
})
