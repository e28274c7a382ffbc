import {describe, expect, it} from 'vitest'

import type {BackupRecord} from '../../../../src/lib/repo/types.js'

import {dayOf, dependantsOf, planDelete, planPrune, weekOf} from '../../../../src/lib/repo/retention.js'

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
