import {readdir, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {createMoData, mutateMoData} from '../../../scripts/make-mo-data.mjs'
import {tempDir} from '../../helpers/cli.js'
import {treeHashes} from '../../helpers/tree.js'

let tmp: {cleanup: () => Promise<void>; path: string}
beforeAll(async () => {
  tmp = await tempDir()
})
afterAll(async () => tmp.cleanup())

async function totalBytes(dir: string): Promise<number> {
  let n = 0
  for (const entry of await readdir(dir, {recursive: true, withFileTypes: true})) {
    if (entry.isFile()) n += (await stat(join(entry.parentPath, entry.name))).size
  }

  return n
}

describe('make-mo-data', () => {
  it('is deterministic: the same seed gives the same bytes, names and mtimes', async () => {
    createMoData(join(tmp.path, 'a'), {seed: 7, size: '4MiB'})
    createMoData(join(tmp.path, 'b'), {seed: 7, size: '4MiB'})
    createMoData(join(tmp.path, 'c'), {seed: 8, size: '4MiB'})
    expect(await treeHashes(join(tmp.path, 'a'))).toEqual(await treeHashes(join(tmp.path, 'b')))
    expect(await treeHashes(join(tmp.path, 'a'))).not.toEqual(await treeHashes(join(tmp.path, 'c')))
    const hk = 'local/hk_data'
    expect((await stat(join(tmp.path, 'a', hk))).mtimeMs).toBe((await stat(join(tmp.path, 'b', hk))).mtimeMs)
  })

  it('makes about the requested size, shaped like mo-data', async () => {
    const dir = join(tmp.path, 'sized')
    createMoData(dir, {size: '8MiB'})
    const total = await totalBytes(dir)
    expect(total).toBeGreaterThan(8 * 1024 ** 2)
    // plus the fixed metadata: checkpoints, gc files, etl, hk_data, cache (~1.2 MiB)
    expect(total).toBeLessThan(8 * 1024 ** 2 + 1.5 * 1024 ** 2)
    expect((await readdir(join(dir, 'shared'))).some((f) => f.endsWith('_00000'))).toBe(true)
    expect(await readdir(dir)).toEqual(
      expect.arrayContaining(['shared', 'local', 'etl', 'logservice-data', 'shared-cache', 'tmp']),
    )
  })

  it('mutate adds objects, deletes some as GC does, and appends to the WAL', async () => {
    const dir = join(tmp.path, 'm')
    createMoData(dir, {size: '16MiB'})
    const before = await treeHashes(dir)
    const {removed} = mutateMoData(dir, {wal: '1MiB'})
    const after = await treeHashes(dir)
    const objects = (t: Record<string, string>) => Object.keys(t).filter((k) => k.endsWith('_00000'))
    expect(removed.length).toBeGreaterThan(0)
    for (const f of removed) expect(after[`shared/${f}`]).toBeUndefined()
    expect(objects(after).filter((k) => !(k in before)).length).toBeGreaterThan(0)
    const wal = Object.keys(before)
      .filter((k) => k.endsWith('.log'))
      .sort()
      .at(-1)!
    expect(after[wal]).not.toBe(before[wal])
    // Untouched objects keep their bytes: most of the data does not change between backups.
    const kept = objects(before).filter((k) => k in after)
    expect(kept.every((k) => before[k] === after[k])).toBe(true)
  })
})
