/**
 * Which backups may go: the chain-aware rules behind `br delete` and `br prune`. Pure functions
 * over records, so the rules are tested without a repository.
 *
 * Guarantees: nothing a kept backup depends on (any member of its chain) is ever selected; the
 * removal order is newest first, so a dependant goes before its base and a crash half-way never
 * leaves an incremental whose base is gone. Dependencies come only from records that can be
 * relied on (`sortOutRecords`): signed by a trusted signer when signers are given, else at least
 * consistent with the records of their chain. A record that cannot be relied on (damaged,
 * forged, edited) is never removed by prune, and every backup older than it is kept, since its
 * real chain is unknown. It does not look at archive contents.
 */
import type {TrustPolicy} from './authenticity.js'
import type {BackupRecord} from './types.js'

import {usageError} from '../errors.js'
import {signatureState} from './authenticity.js'

/** A backup whose record prune and delete cannot rely on, and why. */
export interface Unreliable {
  id: string
  reason: string
}

/**
 * Splits records into those whose chain can be relied on and those that cannot: with signers,
 * a record must carry a valid signature of one of them; without, its signature (if any) must
 * hold and its type, base and chain must agree with each other and with its members' records.
 */
export function sortOutRecords(
  records: BackupRecord[],
  trust: Pick<TrustPolicy, 'signers'>,
  /** chains and types as this host wrote them (the manifest cache), where it kept them */
  written: Map<string, {chain: string[]; type: string}> = new Map(),
): {reliable: BackupRecord[]; unreliable: Unreliable[]} {
  const byId = new Map(records.map((r) => [r.id, r]))
  const reliable: BackupRecord[] = []
  const unreliable: Unreliable[] = []
  for (const r of records) {
    const mine = written.get(r.id)
    const reason =
      mine && (mine.chain.join(',') !== r.chain.join(',') || mine.type !== r.type)
        ? 'its chain or type is not the one this host wrote'
        : unreliableBecause(r, byId, trust.signers)
    if (reason) unreliable.push({id: r.id, reason})
    else reliable.push(r)
  }

  return {reliable, unreliable}
}

function unreliableBecause(r: BackupRecord, byId: Map<string, BackupRecord>, signers: string[]): string | undefined {
  const state = signatureState(r)
  if (state === 'invalid') return 'its signature does not match its record'
  if (signers.length > 0 && (state !== 'valid' || !signers.includes(r.signature!.signer)))
    return state === 'valid' ? `signed by ${r.signature!.signer}, not a trusted signer` : 'not signed'
  const full = r.type === 'full'
  if (full !== (r.chain.length === 1) || full !== (r.base === null) || (!full && r.base !== r.chain.at(-2)))
    return 'its type, base and chain disagree'
  for (const [i, id] of r.chain.entries()) {
    const member = byId.get(id)
    if (member && member.chain.join(',') !== r.chain.slice(0, i + 1).join(','))
      return `its chain disagrees with backup ${id}'s`
  }

  return undefined
}

/** Backups whose chain includes `id` (they need it to be restored), newest first. */
export function dependantsOf(records: BackupRecord[], id: string): BackupRecord[] {
  return records.filter((r) => r.id !== id && r.chain.includes(id)).sort((a, b) => (a.id < b.id ? 1 : -1))
}

export interface DeletePlan {
  /** ids to remove, newest first */
  remove: string[]
}

/**
 * What deleting `id` takes: the backups whose reliable chain includes it, and the newer ones
 * whose record cannot be relied on (they may be built on it).
 */
export function planDelete(
  records: BackupRecord[],
  id: string,
  options: {cascade: boolean; unreliable?: Unreliable[]},
): DeletePlan {
  const unsure = (options.unreliable ?? []).filter((u) => u.id > id).map((u) => u.id)
  const dependants = [...new Set([...dependantsOf(records, id).map((d) => d.id), ...unsure])].sort((a, b) =>
    a < b ? 1 : -1,
  )
  if (dependants.length > 0 && !options.cascade) {
    const names = dependants.map((d) => (unsure.includes(d) ? `${d} (its record cannot be relied on)` : d))
    throw usageError(
      `backup ${id} is the base of ${dependants.length} other backup${dependants.length > 1 ? 's' : ''} (${names.join(', ')})`,
      'pass --cascade to delete them too (add --dry-run to see what would go)',
    )
  }

  return {remove: [...dependants, id]}
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

export function planPrune(records: BackupRecord[], policy: RetentionPolicy, unreliable: Unreliable[] = []): PrunePlan {
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

  // Its real chain is unknown: whatever is older may be in it.
  for (const u of unreliable) {
    for (const r of records) if (r.id < u.id) keep(r.id, `older than ${u.id}, whose record cannot be relied on`)
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
