/**
 * planIncremental in process, against the manifest of a real backup of a real data dir: what is
 * unchanged by size and mtime, what --checksum decides by content, what was deleted, and that
 * directories and symlinks always go into the archive.
 */
import {appendFile, rm, truncate, utimes, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import type {FileEntry, Manifest} from '../../../../src/lib/archive/types.js'
import type {ScannedFile} from '../../../../src/lib/archive/walk.js'

import {ROOT_PATH, scanDataDir} from '../../../../src/lib/archive/walk.js'
import {excludeList} from '../../../../src/lib/backup/backup.js'
import {GREW_FROM_MIN, planIncremental} from '../../../../src/lib/backup/plan.js'
import {ManifestCache} from '../../../../src/lib/repo/manifest-cache.js'
import {optionsFor, takeBackup} from '../../../helpers/backup.js'
import {tempDir} from '../../../helpers/cli.js'
import {makeSmallDataDir} from '../../../helpers/fixtures.js'

let tmp: {cleanup: () => Promise<void>; path: string}
let dataDir: string
let base: Manifest

const exclude = excludeList([], {defaults: true})
const WAL = 'logservice-data/wal/0000000001.log'
const HK = 'local/hk_data'

beforeEach(async () => {
  tmp = await tempDir()
  dataDir = join(tmp.path, 'mo-data')
  await makeSmallDataDir(dataDir)
  const cache = new ManifestCache(join(tmp.path, 'cache'))
  const repoPath = join(tmp.path, 'repo')
  const record = await takeBackup(optionsFor(dataDir, repoPath, {cache}))
  base = (await cache.get(repoPath, record))!
})

afterEach(async () => {
  await tmp.cleanup()
})

const files = (entries: {path: string; type: string}[]) => entries.filter((e) => e.type === 'file').map((e) => e.path)

describe('planIncremental', () => {
  it('packs nothing but the tree when nothing changed; every file stays in the base', async () => {
    const scanned = await scanDataDir(dataDir, {exclude})
    const plan = await planIncremental(scanned, base, {checksum: false, root: dataDir})
    expect(files(plan.toPack)).toEqual([])
    expect(plan.changedBytes).toBe(0)
    expect(plan.deleted).toEqual([])
    expect(plan.unchanged.map((f) => f.path)).toEqual(files(base.entries))
    expect(plan.unchanged.every((f) => f.in === base.backupId)).toBe(true)
    // Directories and symlinks go in every archive: the newest holds the whole tree's shape.
    // (the data dir's own entry is the manifest's root, not one of its entries)
    expect(plan.toPack.filter((e) => e.path !== ROOT_PATH).map((e) => e.path)).toEqual(
      base.entries.filter((e) => e.type !== 'file').map((e) => e.path),
    )
    expect(plan.reread).toBe(0)
  })

  it('packs a file whose size or mtime changed, and lists what was deleted', async () => {
    await appendFile(join(dataDir, WAL), 'more')
    await utimes(join(dataDir, HK), 1_800_000_000, 1_800_000_000)
    await rm(join(dataDir, 'etl'), {recursive: true})
    await writeFile(join(dataDir, 'local', 'new'), 'new')
    const plan = await planIncremental(await scanDataDir(dataDir, {exclude}), base, {checksum: false, root: dataDir})
    expect(files(plan.toPack).sort()).toEqual([HK, 'local/new', WAL])
    expect(plan.deleted).toEqual(base.entries.filter((e) => e.path.startsWith('etl')).map((e) => e.path))
    // The WAL grew: its new bytes count, and the packer is told the base's entry (write.ts packs
    // only what comes after it, if the file still begins with it).
    expect(plan.changedBytes).toBe(4 + 'hakeeper 1\n'.length + 3)
    expect(plan.grown).toBe(1)
    const wal = plan.toPack.find((e) => e.path === WAL) as ScannedFile
    expect(wal.grewFrom).toEqual(base.entries.find((e) => e.path === WAL))
    expect(wal.size).toBe(wal.grewFrom!.size + 4)
  })

  it('packs a grown file whole when it was under GREW_FROM_MIN in the base, or shrank', async () => {
    const walBytes = (base.entries.find((e) => e.path === WAL) as {size: number}).size
    expect(walBytes).toBeGreaterThanOrEqual(GREW_FROM_MIN)
    await appendFile(join(dataDir, HK), 'grown')
    await truncate(join(dataDir, WAL), walBytes - 1)
    const plan = await planIncremental(await scanDataDir(dataDir, {exclude}), base, {checksum: false, root: dataDir})
    expect(files(plan.toPack).sort()).toEqual([HK, WAL])
    expect(plan.toPack.every((e) => e.type !== 'file' || e.grewFrom === undefined)).toBe(true)
    expect(plan.grown).toBe(0)
    expect(plan.changedBytes).toBe('hakeeper 1\n'.length + 5 + walBytes - 1)
  })

  it('GREW_FROM_MIN is the smallest base size packed as appended bytes', async () => {
    const wal = base.entries.find((e) => e.path === WAL) as FileEntry
    const scanned = (await scanDataDir(dataDir, {exclude})).map((e) =>
      e.path === WAL && e.type === 'file' ? {...e, mtimeMs: e.mtimeMs + 1, size: wal.size + 1} : e,
    )
    const at = (size: number) => ({...base, entries: base.entries.map((e) => (e.path === WAL ? {...wal, size} : e))})
    const grewFrom = async (size: number) => {
      const plan = await planIncremental(scanned, at(size), {checksum: false, root: dataDir})
      return (plan.toPack.find((e) => e.path === WAL) as ScannedFile).grewFrom
    }

    expect(await grewFrom(GREW_FROM_MIN)).toMatchObject({size: GREW_FROM_MIN})
    expect(await grewFrom(GREW_FROM_MIN - 1)).toBeUndefined()
  })

  it("lists an unchanged file assembled from parts with the base's parts", async () => {
    const wal = base.entries.find((e) => e.path === WAL) as FileEntry
    const parts = [
      {in: 'older', sha256: 'c'.repeat(64), size: wal.size - 10},
      {in: base.backupId, sha256: 'd'.repeat(64), size: 10},
    ]
    const withParts: Manifest = {
      ...base,
      entries: base.entries.map((e) => (e.path === WAL ? {...wal, parts} : e)),
    }
    const plan = await planIncremental(await scanDataDir(dataDir, {exclude}), withParts, {
      checksum: false,
      root: dataDir,
    })
    const listed = plan.unchanged.find((e) => e.path === WAL)!
    expect(listed).toMatchObject({in: base.backupId, parts, sha256: wal.sha256, size: wal.size})
  })

  it('--checksum decides by content: a touched file is unchanged, a same-size rewrite with the old mtime is packed', async () => {
    await utimes(join(dataDir, HK), 1_800_000_000, 1_800_000_000)
    const ckp = 'shared/ckp/meta_0-100.ckp'
    await writeFile(join(dataDir, ckp), 'checkpoint 9')
    await utimes(join(dataDir, ckp), 1_764_000_001, 1_764_000_001)
    const scanned = await scanDataDir(dataDir, {exclude})
    // By size and mtime: the touched file is packed, the rewrite (same size, same mtime) is trusted unchanged.
    const quick = await planIncremental(scanned, base, {checksum: false, root: dataDir})
    expect(files(quick.toPack)).toEqual([HK])
    const checked = await planIncremental(scanned, base, {checksum: true, root: dataDir})
    expect(files(checked.toPack)).toEqual([ckp])
    expect(checked.reread).toBe(files(base.entries).length)
  })
})
