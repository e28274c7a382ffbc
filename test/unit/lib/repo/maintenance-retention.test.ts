/**
 * prune and delete on a store that retains objects (S3 Object Lock): a real repository of real
 * backups on disk, behind test/helpers/retaining-backend.ts, which stands in for the store's
 * retention (stat reports it, removals are refused). What S3 itself sends and answers is the S3
 * backend's tests'.
 */
import {readdir} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {BackupRecord} from '../../../../src/lib/repo/types.js'

import {deleteBackups, pruneRepository} from '../../../../src/lib/repo/maintenance.js'
import {openRepository, Repository} from '../../../../src/lib/repo/repository.js'
import {optionsFor, takeBackup} from '../../../helpers/backup.js'
import {tempDir} from '../../../helpers/cli.js'
import {makeSmallDataDir} from '../../../helpers/fixtures.js'
import {RetainingBackend} from '../../../helpers/retaining-backend.js'

let tmp: {cleanup: () => Promise<void>; path: string}
let dataDir: string
/** a repository of two chains, full ← incremental each, taken once and copied per test */
let template: string
let records: BackupRecord[]
const DAY = 24 * 60 * 60 * 1000
const until = Date.now() + 30 * DAY
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')

beforeAll(async () => {
  tmp = await tempDir('moctl-br-retention-')
  dataDir = join(tmp.path, 'mo-data')
  await makeSmallDataDir(dataDir)
  template = join(tmp.path, 'template')
  records = []
  for (const type of ['full', 'incremental', 'full', 'incremental'] as const)
    records.push(await takeBackup(optionsFor(dataDir, template, {type})))
})
afterAll(async () => tmp?.cleanup())

/** A fresh copy of the template repository, opened over a retaining backend. */
async function retainingRepo(name: string): Promise<{backend: RetainingBackend; repo: Repository}> {
  const {cp} = await import('node:fs/promises')
  const path = join(tmp.path, name)
  await cp(template, path, {recursive: true})
  const backend = new RetainingBackend(path)
  return {backend, repo: new Repository(backend, path)}
}

const ids = () => records.map((r) => r.id)
const listed = async (repo: Repository) => (await repo.listBackups()).map((r) => r.id)

describe('prune with retention', () => {
  it('keeps a retained backup whole and listed, says until when, keeps its base, and prunes the others (exit 0)', async () => {
    const {backend, repo} = await retainingRepo('prune')
    const [full1, inc1, full2, inc2] = ids()
    // The first chain's incremental's archive is retained (its record is not: removing it first
    // would hide a backup whose data stays); its base's retention has ended (never set).
    backend.retain(`backups/${inc1}/data.tar.zst`, until)
    const dry = await pruneRepository(repo, {keepLast: 1}, {dryRun: true})
    expect(dry.retained).toEqual([{id: inc1, incomplete: false, until: iso(until)}])
    expect(dry.removed).toEqual([])
    const result = await pruneRepository(repo, {keepLast: 1}, {dryRun: false})
    expect(result.retained).toEqual(dry.retained)
    expect(result.removed).toEqual([])
    expect(result.kept).toEqual([
      {id: full1, reasons: [`needed by ${inc1}, under object lock until ${iso(until)}`]},
      ...dry.kept.filter((k) => k.id !== full1),
    ])
    // keep-last 1 keeps inc2 and its base full2; the first chain stays for the lock.
    expect(await listed(repo)).toEqual([full1, inc1, full2, inc2])
    expect(await readdir(join(repo.path, 'backups', inc1))).toEqual(['backup.json', 'data.tar.zst', 'manifest.json'])
  })

  it('removes what is not retained, and keeps a retained full backup without keeping what builds on it', async () => {
    const {backend, repo} = await retainingRepo('prune-full')
    const [full1, inc1, full2, inc2] = ids()
    backend.retain(`backups/${full1}/`, until)
    const result = await pruneRepository(repo, {keepLast: 1}, {dryRun: false})
    expect(result.removed).toEqual([inc1])
    expect(result.retained).toEqual([{id: full1, incomplete: false, until: iso(until)}])
    expect(await listed(repo)).toEqual([full1, full2, inc2])
  })

  it('a store that refuses without the stat having told: the backup is reported kept, its chain kept, prune goes on', async () => {
    const {backend, repo} = await retainingRepo('prune-refused')
    const [full1, inc1, full2, inc2] = ids()
    backend.retain(`backups/${inc1}/backup.json`, until)
    backend.hideRetention = true
    const result = await pruneRepository(repo, {keepLast: 1}, {dryRun: false})
    expect(result.retained).toEqual([{id: inc1, incomplete: false, until: iso(until)}])
    expect(result.removed).toEqual([])
    expect(result.kept.map((k) => k.id)).toContain(full1)
    // The record was refused first: nothing of the backup went.
    expect(await listed(repo)).toEqual([full1, inc1, full2, inc2])
  })

  it('reports retained leftovers of a crashed run as kept (incomplete), and removes the others', async () => {
    const {backend, repo} = await retainingRepo('prune-incomplete')
    const {mkdir, utimes, writeFile} = await import('node:fs/promises')
    const old = new Date(Date.now() - 2 * 60 * 60 * 1000)
    const dead = ['0193aaaa-0000-7000-8000-000000000001', '0193aaaa-0000-7000-8000-000000000002']
    for (const id of dead) {
      await mkdir(join(repo.path, 'backups', id))
      await writeFile(join(repo.path, 'backups', id, 'data.tar.zst'), 'half')
      await utimes(join(repo.path, 'backups', id, 'data.tar.zst'), old, old)
    }

    backend.retain(`backups/${dead[0]}/`, until)
    const result = await pruneRepository(repo, {keepLast: 4}, {dryRun: false})
    expect(result.incompleteRemoved).toEqual([dead[1]])
    expect(result.retained).toEqual([{id: dead[0], incomplete: true, until: iso(until)}])
    expect((await readdir(join(repo.path, 'backups'))).sort()).toEqual([...ids(), dead[0]].sort())
  })
})

describe('delete with retention', () => {
  it('refuses a retained backup with exit 1 naming the date, removing nothing (dry run too)', async () => {
    const {backend, repo} = await retainingRepo('delete')
    const [full1, inc1] = ids()
    backend.retain(`backups/${inc1}/`, until)
    const message = `backup ${inc1} is under object lock until ${iso(until)}: it cannot be deleted before then`
    for (const dryRun of [true, false]) {
      const error = await deleteBackups(repo, inc1, {cascade: false, dryRun}).catch((error_: unknown) => error_)
      expect(error).toMatchObject({code: 'error', exitCode: 1, message})
    }

    // --cascade from the base: the retained dependant stops all of it, before anything goes.
    const cascade = await deleteBackups(repo, full1, {cascade: true, dryRun: false}).catch((error_: unknown) => error_)
    expect(cascade).toMatchObject({
      exitCode: 1,
      message: `backup ${full1} cannot be deleted before ${iso(until)}: ${inc1}, which depends on it, is under object lock until then`,
    })
    expect(await listed(repo)).toEqual(ids())
  })

  it('a refusal the stat did not foresee is the same exit 1; a backup whose retention has ended is deleted', async () => {
    const {backend, repo} = await retainingRepo('delete-refused')
    const [, inc1, , inc2] = ids()
    backend.retain(`backups/${inc2}/backup.json`, until)
    backend.retain(`backups/${inc1}/`, Date.now() - 1000)
    backend.hideRetention = true
    const error = await deleteBackups(repo, inc2, {cascade: false, dryRun: false}).catch((error_: unknown) => error_)
    expect(error).toMatchObject({exitCode: 1, message: expect.stringContaining(`until ${iso(until)}`)})
    expect(await listed(repo)).toEqual(ids())
    expect(await deleteBackups(repo, inc1, {cascade: false, dryRun: false})).toEqual({dryRun: false, removed: [inc1]})
    expect(await (await openRepository(repo.path)).listBackups()).toHaveLength(3)
  })
})
