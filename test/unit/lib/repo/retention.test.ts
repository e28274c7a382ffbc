import {describe, expect, it} from 'vitest'

import type {BackupRecord} from '../../../../src/lib/repo/types.js'

import {dayOf, dependantsOf, planDelete, planPrune, sortOutRecords, weekOf} from '../../../../src/lib/repo/retention.js'

/** Ids sort by time as UUIDv7 do; `at` is the local creation time. */
function rec(id: string, at: string, chain: string[] = [id]): BackupRecord {
  return {
    base: chain.length > 1 ? chain.at(-2)! : null,
    chain,
    createdAt: new Date(at).toISOString(),
    id,
    type: chain.length > 1 ? 'incremental' : 'full',
  } as BackupRecord
}

// f1 ← i1 ← i2, f2 ← i3
const records = [
  rec('01', '2026-11-20T10:00'),
  rec('02', '2026-11-20T12:00', ['01', '02']),
  rec('03', '2026-11-21T10:00', ['01', '02', '03']),
  rec('04', '2026-11-23T10:00'),
  rec('05', '2026-11-24T10:00', ['04', '05']),
]

describe('delete planning', () => {
  it('finds the dependants of a base, newest first', () => {
    expect(dependantsOf(records, '01').map((r) => r.id)).toEqual(['03', '02'])
    expect(dependantsOf(records, '05')).toEqual([])
  })

  it('refuses a base with dependants unless cascading, and cascades newest first', () => {
    expect(() => planDelete(records, '02', {cascade: false})).toThrow('backup 02 is the base of 1 other backup (03)')
    expect(planDelete(records, '02', {cascade: true}).remove).toEqual(['03', '02'])
    expect(planDelete(records, '05', {cascade: false}).remove).toEqual(['05'])
  })
})

describe('prune planning', () => {
  it('keeps the last N and every base they need', () => {
    const plan = planPrune(records, {keepLast: 1})
    expect(plan.keep.map((k) => k.id)).toEqual(['04', '05'])
    expect(plan.keep.find((k) => k.id === '04')!.reasons).toEqual(['base of 05'])
    expect(plan.remove).toEqual(['03', '02', '01'])
  })

  it('keeps the newest backup of each of the last N days, with its chain', () => {
    const plan = planPrune(records, {keepDaily: 3})
    // days 24, 23, 21 → 05, 04, 03; 03 needs 02 and 01
    expect(plan.keep.map((k) => k.id)).toEqual(['01', '02', '03', '04', '05'])
    expect(plan.remove).toEqual([])
    expect(planPrune(records, {keepDaily: 2}).remove).toEqual(['03', '02', '01'])
  })

  it('keeps one a week', () => {
    // 2026-11-20/21 are ISO week 47, 23/24 week 48
    expect(weekOf('2026-11-21T10:00')).toBe('2026-W47')
    expect(weekOf('2026-11-23T10:00')).toBe('2026-W48')
    expect(planPrune(records, {keepWeekly: 1}).remove).toEqual(['03', '02', '01'])
    expect(planPrune(records, {keepWeekly: 2}).remove).toEqual([])
  })

  it('refuses to prune without a policy, which would remove everything', () => {
    expect(() => planPrune(records, {})).toThrow('prune needs a retention policy')
  })

  it('names local days', () => {
    expect(dayOf(new Date(2026, 10, 25, 23, 59).toISOString())).toBe('2026-11-25')
  })
})

describe('records prune and delete may rely on', () => {
  it('without signers: a record whose type, base and chain disagree, or that disagrees with its members, is not relied on', () => {
    const dropped = {...records[2], base: '01', chain: ['01', '03']} // 02 dropped, base fixed up
    const relabelled = {...records[4], base: null, chain: ['05'], type: 'full'} as BackupRecord
    const halfEdited = {...records[2], chain: ['01', '03']} // base still says 02
    const {reliable, unreliable} = sortOutRecords([records[0], records[1], halfEdited, records[3]], {signers: []})
    expect(reliable.map((r) => r.id)).toEqual(['01', '02', '04'])
    expect(unreliable).toEqual([{id: '03', reason: 'its type, base and chain disagree'}])
    // consistent edits pass the shape check alone; what this host wrote catches them
    const written = new Map([
      ['03', {chain: ['01', '02', '03'], type: 'incremental'}],
      ['05', {chain: ['04', '05'], type: 'incremental'}],
    ])
    const both = sortOutRecords([records[0], records[1], dropped, records[3], relabelled], {signers: []}, written)
    expect(both.unreliable.map((u) => u.id)).toEqual(['03', '05'])
  })

  it('with signers: only records they signed are relied on', () => {
    const {reliable, unreliable} = sortOutRecords(records, {signers: ['brsig1' + '0'.repeat(64)]})
    expect(reliable).toEqual([])
    expect(unreliable.map((u) => u.reason)).toEqual(Array.from({length: 5}, () => 'not signed'))
  })

  it('prune keeps every backup older than one it cannot rely on, and never removes that one', () => {
    const reliable = [records[0], records[1], records[3], records[4]]
    expect(planPrune(reliable, {keepLast: 1}).remove).toEqual(['02', '01'])
    const plan = planPrune(reliable, {keepLast: 1}, [{id: '03', reason: 'damaged'}])
    expect(plan.remove).toEqual([])
    expect(plan.keep.find((k) => k.id === '01')?.reasons).toEqual(['older than 03, whose record cannot be relied on'])
  })

  it('delete counts a newer unreliable record as a possible dependant', () => {
    expect(() => planDelete([records[0]], '01', {cascade: false, unreliable: [{id: '02', reason: 'x'}]})).toThrow(
      /02 \(its record cannot be relied on\)/,
    )
    expect(planDelete([records[0]], '01', {cascade: true, unreliable: [{id: '02', reason: 'x'}]}).remove).toEqual([
      '02',
      '01',
    ])
    expect(planDelete([records[1]], '02', {cascade: false, unreliable: [{id: '01', reason: 'x'}]}).remove).toEqual([
      '02',
    ])
  })
})
