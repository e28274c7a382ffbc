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
 */
import type {RepoAddress} from './address.js'
import type {ManifestCache, ManifestHead} from './manifest-cache.js'

import {cleanupRepositoryLeftovers, type CleanupResult, removeStaleLockTempFiles} from '../cleanup.js'
import {acquireLock} from './lock.js'
import {openRepository, type Repository} from './repository.js'
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

export interface DeleteResult {
  dryRun: boolean
  removed: string[]
}

export async function deleteBackups(
  repoPath: RepoAddress | string,
  idOrPrefix: string,
  options: WriterOptions & {cascade: boolean; dryRun: boolean; onRemoved?: (id: string) => void},
): Promise<DeleteResult> {
  return withWriterLock(repoPath, 'br delete', {...options, readOnly: options.dryRun}, async (repo, checkHeld) => {
    const id = await repo.resolveId(idOrPrefix)
    const {reliable, unreliable} = await reliableRecords(repo, options)
    const plan = planDelete(reliable, id, {cascade: options.cascade, unreliable})
    if (!options.dryRun) await removeBackups(repo, plan.remove, checkHeld, options.onRemoved)
    return {dryRun: options.dryRun, removed: plan.remove}
  })
}

export interface PruneResult {
  dryRun: boolean
  incompleteRemoved: string[]
  kept: {id: string; reasons: string[]}[]
  /** leftovers of killed runs beside the data dirs this host backed up here */
  leftovers: CleanupResult[]
  /** temp files of lock writes killed midway, at the repository root (older than the stale limit) */
  lockTempFiles: string[]
  removed: string[]
}

export async function pruneRepository(
  repoPath: RepoAddress | string,
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
      if (!options.dryRun) await removeBackups(repo, [...plan.remove, ...stale], checkHeld, options.onRemoved)
      if (!options.dryRun) await checkHeld('removing leftovers')
      const leftovers = await cleanupRepositoryLeftovers(repo, {dryRun: options.dryRun, more: deadWriters})
      const lockTempFiles = await removeStaleLockTempFiles(repo, {dryRun: options.dryRun})
      return {
        dryRun: options.dryRun,
        incompleteRemoved: stale,
        kept: plan.keep,
        leftovers,
        lockTempFiles,
        removed: plan.remove,
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
  repoPath: RepoAddress | string,
  command: string,
  options: WriterOptions & {onTakeOver?: (holder: {dataDir?: string}) => void; readOnly?: boolean},
  work: (repo: Repository, checkHeld: CheckHeld) => Promise<T>,
): Promise<T> {
  const repo = await openRepository(repoPath)
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
 */
async function removeBackups(
  repo: Repository,
  ids: string[],
  checkHeld: CheckHeld,
  onRemoved?: (id: string) => void,
): Promise<void> {
  for (const id of ids) {
    // eslint-disable-next-line no-await-in-loop
    await checkHeld(`deleting backup ${id}`)
    // eslint-disable-next-line no-await-in-loop
    await repo.deleteBackup(id)
    onRemoved?.(id)
  }
}
