/**
 * Base resolution in process (what the CLI's --base and --type incremental rest on): the newest
 * backup of this data dir and host, an id prefix, a base from elsewhere (refused unless force),
 * none at all, a damaged record passed over; and the base's manifest from the cache or the keys.
 */
import {cp, writeFile} from 'node:fs/promises'
import {hostname} from 'node:os'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {loadBaseManifest, resolveBase} from '../../../../src/lib/backup/base.js'
import {ManifestCache} from '../../../../src/lib/repo/manifest-cache.js'
import {openRepository} from '../../../../src/lib/repo/repository.js'
import {optionsFor, takeBackup} from '../../../helpers/backup.js'
import {tempDir} from '../../../helpers/cli.js'
import {makeSmallDataDir, randomPassphrase} from '../../../helpers/fixtures.js'

let tmp: {cleanup: () => Promise<void>; path: string}
let dataDir: string
let repoPath: string

beforeEach(async () => {
  tmp = await tempDir()
  dataDir = join(tmp.path, 'mo-data')
  repoPath = join(tmp.path, 'repo')
  await makeSmallDataDir(dataDir)
})

afterEach(async () => {
  await tmp.cleanup()
})

const here = (over: {baseId?: string; dataDir?: string; force?: boolean} = {}) => ({
  dataDir,
  force: false,
  host: hostname(),
  ...over,
})

describe('resolveBase', () => {
  it('is the newest complete backup of this data dir on this host, not of another one', async () => {
    const other = join(tmp.path, 'other')
    await cp(dataDir, other, {recursive: true, verbatimSymlinks: true})
    const first = await takeBackup(optionsFor(dataDir, repoPath))
    const second = await takeBackup(optionsFor(dataDir, repoPath))
    await takeBackup(optionsFor(other, repoPath))
    const repo = await openRepository(repoPath)
    expect((await resolveBase(repo, here())).id).toBe(second.id)
    expect(first.id).not.toBe(second.id)
  })

  it('takes a named id or a unique prefix', async () => {
    const first = await takeBackup(optionsFor(dataDir, repoPath))
    await takeBackup(optionsFor(dataDir, repoPath))
    const repo = await openRepository(repoPath)
    expect((await resolveBase(repo, here({baseId: first.id}))).id).toBe(first.id)
    expect((await resolveBase(repo, here({baseId: first.id.slice(0, 12)}))).id).toBe(first.id)
    await expect(resolveBase(repo, here({baseId: 'ffff0000'}))).rejects.toMatchObject({
      code: 'usage',
      message: expect.stringContaining('backup ffff0000 not found'),
    })
  })

  it('refuses a named base from another data dir or host unless force', async () => {
    const first = await takeBackup(optionsFor(dataDir, repoPath))
    const repo = await openRepository(repoPath)
    const moved = join(tmp.path, 'moved')
    await expect(resolveBase(repo, here({baseId: first.id, dataDir: moved}))).rejects.toMatchObject({
      code: 'usage',
      message: `base ${first.id} was taken from ${dataDir} on ${hostname()}, not ${moved} on ${hostname()}`,
      suggestions: [expect.stringContaining('pass --force if the directory moved')],
    })
    await expect(resolveBase(repo, {...here({baseId: first.id}), host: 'elsewhere'})).rejects.toMatchObject({
      code: 'usage',
    })
    expect((await resolveBase(repo, here({baseId: first.id, dataDir: moved, force: true}))).id).toBe(first.id)
  })

  it('says there is none when this data dir has no backup yet', async () => {
    await takeBackup(optionsFor(dataDir, repoPath))
    const repo = await openRepository(repoPath)
    const none = join(tmp.path, 'none')
    await expect(resolveBase(repo, here({dataDir: none}))).rejects.toMatchObject({
      code: 'usage',
      message: `no earlier backup of ${none} in ${repoPath} to base an incremental on`,
    })
  })

  it('passes over a damaged record with a warning and takes the newest one that reads', async () => {
    const first = await takeBackup(optionsFor(dataDir, repoPath))
    const second = await takeBackup(optionsFor(dataDir, repoPath))
    await writeFile(join(repoPath, 'backups', second.id, 'backup.json'), '{"not": "a record"')
    const repo = await openRepository(repoPath)
    const warnings: string[] = []
    const base = await resolveBase(repo, {...here(), onWarning: (w) => warnings.push(w)})
    expect(base.id).toBe(first.id)
    expect(warnings).toEqual([expect.stringMatching(new RegExp(`^backup ${second.id} is damaged and was passed over`))])
    // --base latest says so too: the damaged one may be the backup meant.
    warnings.length = 0
    const named = await resolveBase(repo, {...here({baseId: 'latest'}), onWarning: (w) => warnings.push(w)})
    expect(named.id).toBe(first.id)
    expect(warnings).toEqual([
      expect.stringMatching(
        new RegExp(`^latest is ${first.id}, but a newer backup could not be read: backup ${second.id}: `),
      ),
    ])
  })
})

describe('latest and the backups whose record does not read', () => {
  it('names only newer ones, at most three of them', async () => {
    const made = []
    for (let i = 0; i < 6; i++) made.push(await takeBackup(optionsFor(dataDir, repoPath)))
    // The oldest damaged: latest is the newest, and nothing to say.
    await writeFile(join(repoPath, 'backups', made[0].id, 'backup.json'), '{')
    const repo = await openRepository(repoPath)
    const warnings: string[] = []
    const onWarning = (w: string) => warnings.push(w)
    expect(await repo.resolveId('latest', {onWarning})).toBe(made[5].id)
    expect(warnings).toEqual([])
    // The four newest damaged: latest is the one before them, and the three newest are named.
    for (const b of made.slice(2)) await writeFile(join(repoPath, 'backups', b.id, 'backup.json'), '{')
    expect(await repo.resolveId('latest', {onWarning})).toBe(made[1].id)
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(new RegExp(`^latest is ${made[1].id}, but 4 newer backups could not be read: `))
    for (const b of made.slice(3)) expect(warnings[0]).toContain(`backup ${b.id}: backup.json is not valid JSON`)
    expect(warnings[0]).not.toContain(made[2].id)
    expect(warnings[0]).toMatch(/ \(and 1 more\); name a backup by its id to use another$/)
  })
})

describe('loadBaseManifest', () => {
  it('reads the cache the backup filled; without it and without a key, says what to pass', async () => {
    const cache = new ManifestCache(join(tmp.path, 'cache'))
    const passphrase = randomPassphrase()
    // scrypt at 2^10, not age's 2^18 (over a second of CPU at each use): the cache is the point here
    const encrypt = {passphrase, scryptLogN: 10, type: 'passphrase'} as const
    const record = await takeBackup(optionsFor(dataDir, repoPath, {cache, encrypt}))
    const repo = await openRepository(repoPath)
    const cached = await loadBaseManifest(repo, record, {cache, keys: {identities: [], passphrases: []}})
    expect(cached.backupId).toBe(record.id)
    expect(cached.entries.filter((e) => e.type === 'file')).toHaveLength(record.counts.files)

    const empty = new ManifestCache(join(tmp.path, 'empty-cache'))
    await expect(
      loadBaseManifest(repo, record, {cache: empty, keys: {identities: [], passphrases: []}}),
    ).rejects.toMatchObject({
      code: 'usage',
      message: `the manifest of base ${record.id} is not cached on this host and no key was given to read it`,
    })
    // With the key it is read from the repository, and cached for the next time.
    const read = await loadBaseManifest(repo, record, {cache: empty, keys: {identities: [], passphrases: [passphrase]}})
    expect(read).toEqual(cached)
    expect(await empty.get(repoPath, record)).toEqual(cached)
  })
})

describe('ManifestCache', () => {
  it('gives back what was put, ignores a cached copy that no longer matches the record, and keeps heads', async () => {
    const cache = new ManifestCache(join(tmp.path, 'cache'))
    const record = await takeBackup(optionsFor(dataDir, repoPath, {cache}))
    const manifest = await cache.get(repoPath, record)
    expect(manifest?.backupId).toBe(record.id)
    expect(await cache.head(repoPath, record.id)).toEqual({chain: [record.id], type: 'full'})
    // Another repository path is another cache entry.
    expect(await cache.get(join(tmp.path, 'elsewhere'), record)).toBeUndefined()
    // A cached copy whose bytes are not the ones the record names is not used.
    await cache.put(repoPath, {...manifest!, createdAt: '2000-01-01T00:00:00.000Z'})
    expect(await cache.get(repoPath, record)).toBeUndefined()
  })
})
