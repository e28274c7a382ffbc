/**
 * Deleting and pruning in a repository: the plans of retention.ts carried out, newest first,
 * each backup's record removed before its objects (a half-deleted backup is never listed).
 * Incomplete leftovers of crashed backups are removed by prune once they are older than an hour
 * (a younger one may be a backup still running). Prune also cleans the data dirs this host backed
 * up into the repository (cleanup.ts): clones and staging dirs left by killed runs.
 */
import {cleanupRepositoryLeftovers, type CleanupResult} from '../cleanup.js'
import {acquireLock} from './lock.js'
import {openRepository, type Repository} from './repository.js'
import {planDelete, planPrune, type RetentionPolicy} from './retention.js'

export const STALE_INCOMPLETE_MS = 60 * 60 * 1000

/** Delete and prune write: they hold the repository lock while they do. */
export interface WriterOptions {
  onWarning?: (message: string) => void
  waitLockSeconds?: number
}

export interface DeleteResult {
  dryRun: boolean
  removed: string[]
}

export async function deleteBackups(
  repoPath: string,
  idOrPrefix: string,
  options: WriterOptions & {cascade: boolean; dryRun: boolean; onRemoved?: (id: string) => void},
): Promise<DeleteResult> {
  return withWriterLock(repoPath, 'br delete', options, async (repo) => {
    const target = await repo.getBackup(idOrPrefix)
    const plan = planDelete(await repo.listBackups(), target.id, options)
    if (!options.dryRun) await removeBackups(repo, plan.remove, options.onRemoved)
    return {dryRun: options.dryRun, removed: plan.remove}
  })
}

export interface PruneResult {
  dryRun: boolean
  incompleteRemoved: string[]
  kept: {id: string; reasons: string[]}[]
  /** leftovers of killed runs beside the data dirs this host backed up here */
  leftovers: CleanupResult[]
  removed: string[]
}

export async function pruneRepository(
  repoPath: string,
  policy: RetentionPolicy,
  options: WriterOptions & {dryRun: boolean; onRemoved?: (id: string) => void},
): Promise<PruneResult> {
  const deadWriters: string[] = []
  const onTakeOver = (holder: {dataDir?: string}) => {
    if (holder.dataDir) deadWriters.push(holder.dataDir)
  }

  return withWriterLock(repoPath, 'br prune', {...options, onTakeOver}, async (repo) => {
    const plan = planPrune(await repo.listBackups(), policy)
    const stale = (await repo.listIncomplete()).filter((i) => i.ageMs > STALE_INCOMPLETE_MS).map((i) => i.id)
    if (!options.dryRun) await removeBackups(repo, [...plan.remove, ...stale], options.onRemoved)
    const leftovers = await cleanupRepositoryLeftovers(repo, {dryRun: options.dryRun, more: deadWriters})
    return {dryRun: options.dryRun, incompleteRemoved: stale, kept: plan.keep, leftovers, removed: plan.remove}
  })
}

/** Opens the repository and runs `work` holding its writer lock, released whatever happens. */
async function withWriterLock<T>(
  repoPath: string,
  command: string,
  options: WriterOptions & {onTakeOver?: (holder: {dataDir?: string}) => void},
  work: (repo: Repository) => Promise<T>,
): Promise<T> {
  const repo = await openRepository(repoPath)
  const unlock = await acquireLock(repo, {
    command,
    onTakeOver: options.onTakeOver,
    onWarning: options.onWarning,
    waitSeconds: options.waitLockSeconds,
  })
  try {
    return await work(repo)
  } finally {
    await unlock()
  }
}

/** Newest first, as the plans order them; each backup's record goes before its objects. */
async function removeBackups(repo: Repository, ids: string[], onRemoved?: (id: string) => void): Promise<void> {
  for (const id of ids) {
    // eslint-disable-next-line no-await-in-loop
    await repo.deleteBackup(id)
    onRemoved?.(id)
  }
}
