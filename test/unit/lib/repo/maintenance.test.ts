import {mkdir, readdir, utimes} from 'node:fs/promises'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

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
})
