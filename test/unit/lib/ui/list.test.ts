import {describe, expect, it} from 'vitest'

import type {BackupRecord} from '../../../../src/lib/repo/types.js'

import {
  compactLocalTime,
  LIST_COLUMNS,
  listRows,
  localTime,
  plainColumns,
  tableColumns,
  WIDE_LIST_COLUMNS,
  wideListRows,
} from '../../../../src/lib/ui/list.js'

const record = (over: Partial<BackupRecord>): BackupRecord =>
  ({
    archive: {compression: 'zstd', file: 'data.tar.zst.age', level: 3, sha256: 'x', size: 5 * 1024 * 1024},
    backupTs: '2026-11-25T01:02:03.000Z',
    base: null,
    chain: ['a'],
    completedAt: '2026-11-25T01:02:05.000Z',
    createdAt: '2026-11-25T01:02:03.000Z',
    durationMs: 2500,
    id: 'a',
    type: 'full',
    ...over,
  }) as BackupRecord

describe('listRows', () => {
  it('gives the whole id, type, base, a compact time, duration and size', () => {
    const [row] = listRows([record({base: '01a22f33-5745-73f6-b142-e055b47ab39d', id: 'b', type: 'incremental'})], [])
    expect(row).toHaveLength(LIST_COLUMNS.length)
    expect(row).toEqual([
      'b',
      'incremental',
      '01a22f33-5745',
      compactLocalTime('2026-11-25T01:02:03.000Z'),
      '2.5s',
      '5.0 MiB',
    ])
    expect(row[3]).toMatch(/^2026-11-2[45] \d\d:\d\d:03$/)
  })

  it('keeps a damaged record as a row', () => {
    const rows = listRows([record({})], [{id: '0', reason: 'bad json'}])
    expect(rows.map((r) => r.slice(0, 2))).toEqual([
      ['0', 'DAMAGED'],
      ['a', 'full'],
    ])
  })
})

describe('wideListRows', () => {
  it("gives mo_br's eight columns, with sizes and durations for people", () => {
    const [row] = wideListRows([record({})], [], '/backups/mo')
    expect(row).toHaveLength(WIDE_LIST_COLUMNS.length)
    expect(row[0]).toBe('a')
    expect(row[1]).toBe('5.0 MiB')
    expect(row[2]).toBe('/backups/mo')
    expect(row[4]).toBe('2.5s')
    expect(row[7]).toBe('full')
  })

  it('names the base of an incremental', () => {
    const [row] = wideListRows([record({base: 'a', id: 'b', type: 'incremental'})], [], '/r')
    expect(row[7]).toBe('incremental (base a)')
  })

  it('prints local times as mo_br does', () => {
    expect(localTime('2026-11-25T01:02:03.000Z')).toMatch(/^2026-11-2[45] \d\d:\d\d:03 [+-]\d{4}$/)
  })
})

describe('plainColumns', () => {
  const records = [
    record({}),
    record({
      base: '01a22f33-5745-73f6-b142-e055b47ab39d',
      id: '01a22f34-0000-7000-8000-000000000000',
      type: 'incremental',
    }),
    record({archive: {compression: 'zstd', file: 'f', level: 3, sha256: 'x', size: 3}, durationMs: 0, id: 'c'}),
  ]
  const damaged = [{id: '01a22f35-1111-7000-8000-000000000000', reason: 'bad json'}]

  it('lays out the list exactly as cli-table3 does, columns and wide columns', async () => {
    const rows = listRows(records, damaged)
    expect(plainColumns(LIST_COLUMNS, rows)).toBe(await tableColumns(LIST_COLUMNS, rows))
    const wide = wideListRows(records, damaged, '/backups/mo with space')
    expect(plainColumns(WIDE_LIST_COLUMNS, wide)).toBe(await tableColumns(WIDE_LIST_COLUMNS, wide))
  })

  it('lays out a head alone (an empty repository) as cli-table3 does', async () => {
    expect(plainColumns(LIST_COLUMNS, [])).toBe(await tableColumns(LIST_COLUMNS, []))
  })

  it('leaves cells that are not printable ASCII to cli-table3, which measures their display width', async () => {
    const wide = wideListRows(records, [], '/备份/mo')
    expect(plainColumns(WIDE_LIST_COLUMNS, wide)).toBeUndefined()
    const lines = (await tableColumns(WIDE_LIST_COLUMNS, wide)).split('\n')
    // Each ideograph takes two columns: the next column starts two characters earlier than in the head.
    const headAt = lines[0].indexOf('AT TIME')
    expect(lines[1].indexOf(localTime(records[0].createdAt))).toBe(headAt - 2)
  })
})
