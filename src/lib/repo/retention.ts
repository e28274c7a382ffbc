/**
 * Which backups may go: the chain-aware rules behind `br delete` and `br prune`. Pure functions
 * over records, so the rules are tested without a repository.
 *
 * Guarantees: nothing a kept backup depends on (any member of its chain) is ever selected; the
 * removal order is newest first, so a dependant goes before its base and a crash half-way never
 * leaves an incremental whose base is gone. It does not look at archive contents.
 */
import type {BackupRecord} from './types.js'

import {usageError} from '../errors.js'

/** Backups whose chain includes `id` (they need it to be restored), newest first. */
export function dependantsOf(records: BackupRecord[], id: string): BackupRecord[] {
  return records.filter((r) => r.id !== id && r.chain.includes(id)).sort((a, b) => (a.id < b.id ? 1 : -1))
}

export interface DeletePlan {
  /** ids to remove, newest first */
  remove: string[]
}

export function planDelete(records: BackupRecord[], id: string, options: {cascade: boolean}): DeletePlan {
  const dependants = dependantsOf(records, id)
  if (dependants.length > 0 && !options.cascade) {
    throw usageError(
      `backup ${id} is the base of ${dependants.length} other backup${dependants.length > 1 ? 's' : ''} (${dependants.map((d) => d.id).join(', ')})`,
      'pass --cascade to delete them too (add --dry-run to see what would go)',
    )
  }

  return {remove: [...dependants.map((d) => d.id), id]}
}

export interface RetentionPolicy {
  keepDaily?: number
  keepLast?: number
  keepWeekly?: number
}

export interface PrunePlan {
  /** complete backups kept, oldest first, each with why */
  keep: {id: string; reasons: string[]}[]
  /** complete backups to remove, newest first */
  remove: string[]
}

export function planPrune(records: BackupRecord[], policy: RetentionPolicy): PrunePlan {
  const {keepDaily = 0, keepLast = 0, keepWeekly = 0} = policy
  if (keepDaily + keepLast + keepWeekly === 0) {
    throw usageError(
      'prune needs a retention policy: it would remove every backup',
      'pass --keep-last N, --keep-daily N and/or --keep-weekly N',
    )
  }

  const newestFirst = [...records].sort((a, b) => (a.id < b.id ? 1 : -1))
  const reasons = new Map<string, string[]>()
  const keep = (id: string, why: string) => reasons.set(id, [...(reasons.get(id) ?? []), why])
  for (const r of newestFirst.slice(0, keepLast)) keep(r.id, 'last')
  keepPerBucket(newestFirst, {bucketOf: dayOf, count: keepDaily, why: 'daily'}, keep)
  keepPerBucket(newestFirst, {bucketOf: weekOf, count: keepWeekly, why: 'weekly'}, keep)
  // A kept backup needs its whole chain.
  const byId = new Map(records.map((r) => [r.id, r]))
  for (const id of reasons.keys()) {
    for (const member of byId.get(id)?.chain ?? []) if (member !== id) keep(member, `base of ${id}`)
  }

  return {
    keep: [...reasons.entries()].map(([id, why]) => ({id, reasons: why})).sort((a, b) => (a.id < b.id ? -1 : 1)),
    remove: newestFirst.filter((r) => !reasons.has(r.id)).map((r) => r.id),
  }
}

/** The newest backup of each of the newest `count` buckets (days, weeks). */
function keepPerBucket(
  newestFirst: BackupRecord[],
  rule: {bucketOf: (iso: string) => string; count: number; why: string},
  keep: (id: string, why: string) => void,
): void {
  const {bucketOf, count, why} = rule
  const seen = new Set<string>()
  for (const r of newestFirst) {
    if (seen.size >= count) return
    const bucket = bucketOf(r.createdAt)
    if (seen.has(bucket)) continue
    seen.add(bucket)
    keep(r.id, `${why} ${bucket}`)
  }
}

/** Local calendar day, as operators think of "one per day". */
export function dayOf(iso: string): string {
  const d = new Date(iso)
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`
}

/** ISO 8601 week (Monday first), local time: '2026-W48'. */
export function weekOf(iso: string): string {
  const d = new Date(iso)
  const day = new Date(d.getFullYear(), d.getMonth(), d.getDate())
  const weekday = (day.getDay() + 6) % 7
  day.setDate(day.getDate() - weekday + 3)
  const firstThursday = new Date(day.getFullYear(), 0, 4)
  const week =
    1 +
    Math.round(((day.getTime() - firstThursday.getTime()) / 86_400_000 - 3 + ((firstThursday.getDay() + 6) % 7)) / 7)
  return `${day.getFullYear()}-W${String(week).padStart(2, '0')}`
}
