/**
 * Deleting and pruning in a repository: the plans of retention.ts carried out, newest first,
 * each backup's record removed before its objects (a half-deleted backup is never listed).
 * Incomplete leftovers of crashed backups are removed by prune once they are older than an hour
 * (a younger one may be a backup still running). Chains are read only from records that can be
 * relied on (retention.ts `sortOutRecords`); a damaged or unreliable record is named in a
 * warning, never removed by prune, and protects every older backup until it is deleted. Prune
 * also cleans the data dirs this host backed up into the repository (cleanup.ts): clones and
 * staging dirs left by killed runs, and the lock temp files killed runs left at the root. Dry runs take no lock: they only read. A run whose lock was
 * taken over (lock.ts) stops with exit 4 before its next removal.
 *
 * Retention (S3 Object Lock): before anything of a backup is removed, the retention of each of
 * its objects is read (`stat().retainUntilMs`); a backup with an object still retained is left
 * whole and listed, never half-removed (its record gone, its data kept). Prune reports it as kept
 * until that date, keeps every backup its chain needs, and goes on with the others; delete refuses
 * (exit 1) before removing anything. A store that refuses a removal the stat did not foresee
 * (ERETAINED) is handled the same way from that backup on.
 */
import type {RepoAddress} from './address.js'
import type {ManifestCache, ManifestHead} from './manifest-cache.js'
import type {BackupRecord} from './types.js'

import {cleanupRepositoryLeftovers, type CleanupResult, removeStaleLockTempFiles} from '../cleanup.js'
import {BrError} from '../errors.js'
import {isRetained} from './backend.js'
import {acquireLock} from './lock.js'
import {backupPrefix} from './paths.js'
import {openRepository, Repository} from './repository.js'
import {planDelete, planPrune, type RetentionPolicy, sortOutRecords, type Unreliable} from './retention.js'

export const STALE_INCOMPLETE_MS = 60 * 60 * 1000

/** Delete and prune write: they hold the repository lock while they do. */
export interface WriterOptions {
  /** the manifests this host wrote: their chains are checked against the records */
  cache?: ManifestCache
  /**
   * prune: what a crashed backup left (objects without a record, incomplete multipart uploads) is
   * removed once older than this; default STALE_INCOMPLETE_MS. Younger may be a backup that runs.
   */
  incompleteOlderThanMs?: number
  onWarning?: (message: string) => void
  /** signers (brsig1…) whose records are relied on for chains; empty: records are checked for consistency only */
  signers?: string[]
  waitLockSeconds?: number
}

/** The records prune and delete may rely on, with a warning for each one they may not. */
async function reliableRecords(repo: Repository, options: WriterOptions) {
  const {damaged, records} = await repo.scanBackups()
  const signers = options.signers ?? []
  const written = new Map<string, ManifestHead>()
  for (const r of records) {
    // eslint-disable-next-line no-await-in-loop -- small files, one per backup
    const head = await options.cache?.head(repo.path, r.id)
    if (head) written.set(r.id, head)
  }

  const {reliable, unreliable} = sortOutRecords(records, {signers}, written)
  const all: Unreliable[] = [...damaged, ...unreliable].sort((a, b) => (a.id < b.id ? -1 : 1))
  for (const u of all)
    options.onWarning?.(
      `backup ${u.id} cannot be relied on (${u.reason}): it is left alone, and every older backup is kept (\`moctl br delete ${u.id}\` removes it)`,
    )
  if (signers.length === 0 && records.some((r) => r.type === 'incremental'))
    options.onWarning?.(
      'chains are read from records that are not authenticated: pass --writer-key or --trusted-signer so that an edited record cannot make prune or delete remove a backup that is still needed',
    )
  return {reliable, unreliable: all}
}

/** A repository as the commands name it, or one already open (tests open one over their own backend). */
export type RepoTarget = RepoAddress | Repository | string

/** A backup prune could not remove yet: its store keeps it under retention (S3 Object Lock). */
export interface RetainedBackup {
  id: string
  /** a crashed run's leftovers, not a complete backup */
  incomplete: boolean
  /** when the retention ends (ISO 8601), or null when the store refused without saying */
  until: null | string
}

export interface DeleteResult {
  dryRun: boolean
  removed: string[]
}

export async function deleteBackups(
  repoPath: RepoTarget,
  idOrPrefix: string,
  options: WriterOptions & {cascade: boolean; dryRun: boolean; onRemoved?: (id: string) => void},
): Promise<DeleteResult> {
  return withWriterLock(repoPath, 'br delete', {...options, readOnly: options.dryRun}, async (repo, checkHeld) => {
    const id = await repo.resolveId(idOrPrefix)
    const {reliable, unreliable} = await reliableRecords(repo, options)
    const plan = planDelete(reliable, id, {cascade: options.cascade, unreliable})
    // Every backup of the plan is checked before any is touched: a cascade stops whole, or not at all.
    const retained = await retentionOf(repo, plan.remove)
    const first = plan.remove.find((r) => retained.has(r))
    if (first) throw retainedError(id, first, retained.get(first)!)
    if (!options.dryRun) {
      await removeBackups(repo, plan.remove, checkHeld, {
        onRemoved: options.onRemoved,
        onRetained(r, until) {
          throw retainedError(id, r, until)
        },
      })
    }

    return {dryRun: options.dryRun, removed: plan.remove}
  })
}

/** delete's refusal: exit 1, naming the date (unknown when the store refused without saying). */
function retainedError(id: string, retainedId: string, until: null | number): BrError {
  const when = until === null ? 'its retention ends' : isoSeconds(until)
  return new BrError(
    'error',
    retainedId === id
      ? `backup ${id} is under object lock until ${when}: it cannot be deleted before then`
      : `backup ${id} cannot be deleted before ${when}: ${retainedId}, which depends on it, is under object lock until then`,
    {
      suggestions: [
        'nothing was deleted; delete it after that date (prune does so once a retention policy lets it go)',
      ],
    },
  )
}

export interface PruneResult {
  dryRun: boolean
  incompleteRemoved: string[]
  /** kept by the policy, or because a backup under retention needs it */
  kept: {id: string; reasons: string[]}[]
  /** leftovers of killed runs beside the data dirs this host backed up here */
  leftovers: CleanupResult[]
  /** temp files of lock writes killed midway, at the repository root (older than the stale limit) */
  lockTempFiles: string[]
  removed: string[]
  /** backups (and incomplete leftovers) the policy lets go but the store retains: kept until then */
  retained: RetainedBackup[]
}

export async function pruneRepository(
  repoPath: RepoTarget,
  policy: RetentionPolicy,
  options: WriterOptions & {dryRun: boolean; onRemoved?: (id: string) => void},
): Promise<PruneResult> {
  const deadWriters: string[] = []
  const onTakeOver = (holder: {dataDir?: string}) => {
    if (holder.dataDir) deadWriters.push(holder.dataDir)
  }

  return withWriterLock(
    repoPath,
    'br prune',
    {...options, onTakeOver, readOnly: options.dryRun},
    async (repo, checkHeld) => {
      const {reliable, unreliable} = await reliableRecords(repo, options)
      const plan = planPrune(reliable, policy, unreliable)
      const stale = (await repo.listIncomplete())
        .filter((i) => i.ageMs >= (options.incompleteOlderThanMs ?? STALE_INCOMPLETE_MS))
        .map((i) => i.id)
      const held = new RetentionHold(reliable, await retentionOf(repo, [...plan.remove, ...stale]))
      const go = (ids: string[]) => ids.filter((id) => !held.keeps(id))
      if (!options.dryRun) {
        await removeBackups(repo, [...go(plan.remove), ...go(stale)], checkHeld, {
          onRemoved: options.onRemoved,
          onRetained: (id, until) => held.add(id, until),
          skip: (id) => held.keeps(id),
        })
        await checkHeld('removing leftovers')
      }

      const leftovers = await cleanupRepositoryLeftovers(repo, {dryRun: options.dryRun, more: deadWriters})
      const lockTempFiles = await removeStaleLockTempFiles(repo, {dryRun: options.dryRun})
      return {
        dryRun: options.dryRun,
        incompleteRemoved: go(stale),
        kept: [...plan.keep, ...held.needed(plan.remove)].sort((a, b) => (a.id < b.id ? -1 : 1)),
        leftovers,
        lockTempFiles,
        removed: go(plan.remove),
        retained: held.retained(new Set(stale)),
      }
    },
  )
}

/**
 * Opens the repository and runs `work` holding its writer lock, released whatever happens. A
 * dry run (`readOnly`) only reads, so it takes no lock: it works while a backup is being written,
 * and what it shows is what a real run would do were it to start now.
 */
async function withWriterLock<T>(
  repoPath: RepoTarget,
  command: string,
  options: WriterOptions & {onTakeOver?: (holder: {dataDir?: string}) => void; readOnly?: boolean},
  work: (repo: Repository, checkHeld: CheckHeld) => Promise<T>,
): Promise<T> {
  const repo = repoPath instanceof Repository ? repoPath : await openRepository(repoPath)
  if (options.readOnly) return work(repo, async () => {})
  const unlock = await acquireLock(repo, {
    command,
    onTakeOver: options.onTakeOver,
    onWarning: options.onWarning,
    waitSeconds: options.waitLockSeconds,
  })
  try {
    return await work(repo, (doing) => unlock.checkHeld(doing))
  } finally {
    await unlock()
  }
}

/** Resolves while this run still holds the repository lock; else fails with exit 4 (lock.ts Unlock.checkHeld). */
type CheckHeld = (doing: string) => Promise<void>

/**
 * Newest first, as the plans order them; each backup's record goes before its objects. Each
 * removal first checks the lock is still ours: a run whose lock was taken over deletes no more.
 * A removal the store refuses for retention is told to `onRetained`, and the next ones go on
 * unless `skip` says otherwise (it is asked again before each one: a backup now known retained
 * keeps its chain).
 */
async function removeBackups(
  repo: Repository,
  ids: string[],
  checkHeld: CheckHeld,
  handlers: {
    onRemoved?: (id: string) => void
    onRetained: (id: string, until: null | number) => void
    skip?: (id: string) => boolean
  },
): Promise<void> {
  for (const id of ids) {
    if (handlers.skip?.(id)) continue
    // eslint-disable-next-line no-await-in-loop
    await checkHeld(`deleting backup ${id}`)
    try {
      // eslint-disable-next-line no-await-in-loop
      await repo.deleteBackup(id)
    } catch (error) {
      if (!isRetained(error)) throw error
      handlers.onRetained(id, error.retainUntilMs ?? null)
      continue
    }

    handlers.onRemoved?.(id)
  }
}

/**
 * When the store's retention of each backup ends, for those with an object still retained now:
 * the latest date of its objects (a backup goes whole or not at all). A stat that fails (a FIFO
 * where an object belongs) says nothing of retention: the removal itself will tell.
 */
async function retentionOf(repo: Repository, ids: string[], now = Date.now()): Promise<Map<string, number>> {
  const until = new Map<string, number>()
  for (const id of ids) {
    // eslint-disable-next-line no-await-in-loop -- a few objects per backup
    const objects = await repo.backend.list(backupPrefix(id))
    // eslint-disable-next-line no-await-in-loop
    const infos = await Promise.all(objects.map((o) => repo.backend.stat(o.key).catch(() => null)))
    const latest = Math.max(...infos.map((i) => i?.retainUntilMs ?? 0))
    if (latest > now) until.set(id, latest)
  }

  return until
}

/**
 * What prune keeps for retention: the backups the store retains, and every backup of their
 * chains (an incremental under retention is worthless without its base, even when the base's
 * own retention has ended).
 */
class RetentionHold {
  private readonly byId: Map<string, BackupRecord>
  /** backups kept because a retained one needs them → that one */
  private readonly neededBy = new Map<string, string>()
  private readonly until = new Map<string, null | number>()

  constructor(records: BackupRecord[], found: Map<string, number>) {
    this.byId = new Map(records.map((r) => [r.id, r]))
    for (const [id, until] of found) this.add(id, until)
  }

  add(id: string, until: null | number): void {
    this.until.set(id, until)
    this.neededBy.delete(id)
    for (const member of this.byId.get(id)?.chain ?? []) {
      if (member !== id && !this.until.has(member) && !this.neededBy.has(member)) this.neededBy.set(member, id)
    }
  }

  keeps(id: string): boolean {
    return this.until.has(id) || this.neededBy.has(id)
  }

  /** The backups of `planned` kept only because a retained backup needs them, with why. */
  needed(planned: string[]): {id: string; reasons: string[]}[] {
    return planned
      .filter((id) => this.neededBy.has(id))
      .map((id) => {
        const by = this.neededBy.get(id)!
        const until = this.until.get(by)
        return {id, reasons: [`needed by ${by}, under object lock${until ? ` until ${isoSeconds(until)}` : ''}`]}
      })
  }

  retained(incomplete: Set<string>): RetainedBackup[] {
    return [...this.until]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([id, until]) => ({id, incomplete: incomplete.has(id), until: until === null ? null : isoSeconds(until)}))
  }
}

/** 2030-01-02T03:04:05Z: to the second, as an operator reads it. */
const isoSeconds = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')
