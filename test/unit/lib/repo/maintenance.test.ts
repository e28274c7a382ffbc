import {writeFileSync} from 'node:fs'
import {mkdir, readdir, readFile, utimes, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {removeStaleLockTempFiles} from '../../../../src/lib/cleanup.js'
import {LOCK_FILE} from '../../../../src/lib/repo/lock.js'
import {pruneRepository} from '../../../../src/lib/repo/maintenance.js'
import {openRepository} from '../../../../src/lib/repo/repository.js'
import {tempDir} from '../../../helpers/cli.js'

let tmp: {cleanup: () => Promise<void>; path: string}
beforeEach(async () => {
  tmp = await tempDir()
})
afterEach(async () => tmp.cleanup())

describe('pruneRepository', () => {
  it('removes leftovers of crashed backups older than an hour, and leaves younger ones (maybe still running)', async () => {
    const repo = join(tmp.path, 'repo')
    await openRepository(repo, {create: true})
    const old = join(repo, 'backups', '0193aaaa-0000-7000-8000-000000000001')
    const young = join(repo, 'backups', '0193aaaa-0000-7000-8000-000000000002')
    await mkdir(old, {recursive: true})
    await mkdir(young, {recursive: true})
    const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000)
    await utimes(old, twoHoursAgo, twoHoursAgo)
    const dry = await pruneRepository(repo, {keepLast: 1}, {dryRun: true})
    expect(dry.incompleteRemoved).toEqual(['0193aaaa-0000-7000-8000-000000000001'])
    expect((await readdir(join(repo, 'backups'))).length).toBe(2)
    const done = await pruneRepository(repo, {keepLast: 1}, {dryRun: false})
    expect(done.incompleteRemoved).toEqual(['0193aaaa-0000-7000-8000-000000000001'])
    expect(await readdir(join(repo, 'backups'))).toEqual(['0193aaaa-0000-7000-8000-000000000002'])
  })

  it('removes younger leftovers too when told (--incomplete-older-than 0)', async () => {
    const repo = join(tmp.path, 'repo')
    await openRepository(repo, {create: true})
    await mkdir(join(repo, 'backups', '0193aaaa-0000-7000-8000-000000000003'), {recursive: true})
    const done = await pruneRepository(repo, {keepLast: 1}, {dryRun: false, incompleteOlderThanMs: 0})
    expect(done.incompleteRemoved).toEqual(['0193aaaa-0000-7000-8000-000000000003'])
    expect(await readdir(join(repo, 'backups'))).toEqual([])
  })

  it('stops with exit 4, deleting no more, once its lock was taken over by another writer', async () => {
    const repo = join(tmp.path, 'repo')
    await openRepository(repo, {create: true})
    const ids = [1, 2, 3].map((n) => `0193aaaa-0000-7000-8000-00000000000${n}`)
    const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000)
    for (const id of ids) {
      await mkdir(join(repo, 'backups', id), {recursive: true})
      await utimes(join(repo, 'backups', id), twoHoursAgo, twoHoursAgo)
    }

    const other = JSON.stringify({command: 'br backup', host: 'elsewhere', pid: 1, startedAt: new Date().toISOString()})
    const removed: string[] = []
    const error = await pruneRepository(
      repo,
      {keepLast: 1},
      {
        dryRun: false,
        // After the first removal another writer holds the lock (it found ours stale).
        onRemoved(id) {
          removed.push(id)
          writeFileSync(join(repo, LOCK_FILE), other)
        },
      },
    ).catch((error_: unknown) => error_)
    expect(error).toMatchObject({
      code: 'locked',
      exitCode: 4,
      message: `lost the lock of repository ${repo} (another writer took it over): stopped before deleting backup ${ids[1]}`,
    })
    expect(removed).toEqual([ids[0]])
    expect(await readdir(join(repo, 'backups'))).toEqual(ids.slice(1))
    expect(await readFile(join(repo, LOCK_FILE), 'utf8')).toBe(other)
  })

  it('removes the lock temp files a killed lock write left at the root once older than the stale limit (as br cleanup --path does), never younger ones', async () => {
    const repo = join(tmp.path, 'repo')
    await openRepository(repo, {create: true})
    const old = ['lock.json.tmp-0123456789ab', 'lock.json.removing-ba9876543210']
    const young = 'lock.json.tmp-aaaaaaaaaaaa'
    const anHourAgo = new Date(Date.now() - 60 * 60 * 1000)
    for (const name of [...old, young]) await writeFile(join(repo, name), '{}')
    for (const name of old) await utimes(join(repo, name), anHourAgo, anHourAgo)
    // Not ours, and not at the root: left alone.
    await writeFile(join(repo, 'lock.json.notes'), 'x')
    await utimes(join(repo, 'lock.json.notes'), anHourAgo, anHourAgo)
    const dry = await pruneRepository(repo, {keepLast: 1}, {dryRun: true})
    expect(dry.lockTempFiles).toEqual(old.map((name) => join(repo, name)).sort())
    expect(await removeStaleLockTempFiles(await openRepository(repo), {dryRun: true})).toEqual(dry.lockTempFiles)
    expect((await readdir(repo)).filter((n) => n.startsWith('lock.json')).sort()).toEqual(
      [...old, young, 'lock.json.notes'].sort(),
    )
    const done = await pruneRepository(repo, {keepLast: 1}, {dryRun: false})
    expect(done.lockTempFiles).toEqual(dry.lockTempFiles)
    expect((await readdir(repo)).filter((n) => n.startsWith('lock.json')).sort()).toEqual(['lock.json.notes', young])
  })
})
