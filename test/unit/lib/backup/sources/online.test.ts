import {describe, expect, it} from 'vitest'

import type {FileEntry, Manifest} from '../../../../../src/lib/archive/types.js'

import {onlineFolderFor, planOnlineIncremental} from '../../../../../src/lib/backup/sources/online.js'

const file = (path: string, inId = 'base'): FileEntry => ({
  in: inId,
  mode: 0o644,
  mtimeMs: 0,
  path,
  sha256: 'a'.repeat(64),
  size: 10,
  type: 'file',
})
const base: Manifest = {
  backupId: 'base',
  chain: ['base'],
  createdAt: '',
  deleted: [],
  entries: [file('mo_meta'), file('tae/obj1'), file('tae/obj2'), file('tae/ckp/old.ckp'), file('tae/gc_d')],
  format: 1,
  type: 'full',
}
const listed = (path: string, needCopy: boolean) => ({needCopy, path, sha256: null, size: 10, ts: null})

describe('planOnlineIncremental', () => {
  it("packs MO's folder, keeps what tae_list leaves to the base, deletes what the base held beyond that", () => {
    const scanned = [
      {mode: 0o644, mtimeMs: 0, path: 'mo_meta', size: 5, type: 'file' as const},
      {mode: 0o644, mtimeMs: 0, path: 'tae/obj3', size: 7, type: 'file' as const},
      {mode: 0o644, mtimeMs: 0, path: 'tae/ckp/new.ckp', size: 3, type: 'file' as const},
    ]
    const plan = planOnlineIncremental(
      scanned,
      [listed('obj1', false), listed('obj2', false), listed('obj3', true), listed('ckp/new.ckp', true)],
      base,
    )
    expect(plan.toPack).toBe(scanned)
    expect(plan.changedBytes).toBe(15)
    expect(plan.unchanged.map((f) => f.path)).toEqual(['tae/obj1', 'tae/obj2'])
    expect(plan.deleted.sort()).toEqual(['tae/ckp/old.ckp', 'tae/gc_d'])
  })

  it('refuses an object MO leaves to a base whose chain does not hold it (exit 3)', () => {
    expect(() => planOnlineIncremental([], [listed('obj9', false)], base)).toThrow(
      expect.objectContaining({
        exitCode: 3,
        message: "MO's incremental leaves tae/obj9 in an earlier backup, but base base's chain does not hold it",
      }),
    )
  })

  it("puts MO's folder beside the data dir, or under --online-dir", () => {
    expect(onlineFolderFor('/opt/mo/mo-data', 'x')).toBe('/opt/mo/.mo-data.online-x')
    expect(onlineFolderFor('/opt/mo/mo-data', 'x', '/scratch')).toBe('/scratch/.mo-data.online-x')
  })
})
