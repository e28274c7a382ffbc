/**
 * What killed runs leave beside a data directory, found and removed: restore staging directories
 * (`.<name>.restore-<id>-<token>`), --clone copies (`.<name>.clone-<id>`, beside the data dir or
 * in --clone-dir) and the lock's own temp files. Backup and restore call removeLeftovers once they
 * hold the data dir's lock; `br cleanup` and `prune` call cleanupDataDir / cleanupRepositoryLeftovers,
 * and removeStaleLockTempFiles for the repository lock's temp files at the repository root.
 *
 * Guarantees: only names of our own patterns are touched, and only while the data dir's lock is
 * held (every backup, restore and cleanup of it takes that lock, so no live run owns them then):
 * a live run's directories are never removed; a data dir locked by a live run is skipped (exit 4
 * for `br cleanup`). The previous data kept by a restore (`<name>.before-<id>`) is never removed:
 * it may be the only copy of that data; it is listed, so that every run says where it is.
 */
import {readdir, rm} from 'node:fs/promises'
import {hostname} from 'node:os'
import {join} from 'node:path'

import {
  type DataDirLock,
  type DataDirPaths,
  lockDataDir,
  readDataDirLock,
  recover,
  resolveDataDir,
} from './datadir-lock.js'
import {BrError, isBrError} from './errors.js'
import {staleLockTempFiles, staleReason} from './repo/lock.js'
import {type Repository} from './repo/repository.js'

export interface CleanupResult {
  dataDir: string
  dryRun: boolean
  /** previous data kept by restores (`<data-dir>.before-<id>`): never removed here */
  previous: string[]
  /** what a dead run left and what was done about it (its stopped service, an unfinished swap) */
  recovered: string[]
  /** leftover directories removed (with dryRun: that would be removed) */
  removed: string[]
  /** why this data dir was left alone (locked by a live run), or null */
  skipped: null | string
}

/** Leftovers beside the data dir (and in `cloneDir`), the lock's temp files included; call while holding the lock. */
export async function findLeftovers(paths: DataDirPaths, cloneDir?: string): Promise<string[]> {
  const beside = await names(paths.parent)
  const ours = beside
    .filter(
      (n) =>
        n.startsWith(`.${paths.name}.restore-`) ||
        n.startsWith(`.${paths.name}.clone-`) ||
        n.startsWith(`.${paths.name}.moctl-br.lock.`),
    )
    .map((n) => join(paths.parent, n))
  const clones =
    cloneDir && cloneDir !== paths.parent
      ? (await names(cloneDir)).filter((n) => n.startsWith(`.${paths.name}.clone-`)).map((n) => join(cloneDir, n))
      : []
  return [...ours, ...clones].sort()
}

/** Previous data kept by restores beside the data dir. */
export async function findPrevious(paths: DataDirPaths): Promise<string[]> {
  return (await names(paths.parent))
    .filter((n) => n.startsWith(`${paths.name}.before-`))
    .map((n) => join(paths.parent, n))
    .sort()
}

/**
 * Removes what dead runs left beside a data dir whose lock `lock` holds (never `keep`, the
 * caller's own directories); says where previous data is kept. One line per thing done.
 */
export async function removeLeftovers(
  lock: DataDirLock,
  options: {cloneDir?: string; keep?: string[]} = {},
): Promise<{notes: string[]; removed: string[]}> {
  const keep = new Set(options.keep ?? [])
  const removed: string[] = []
  for (const dir of await findLeftovers(lock.paths, options.cloneDir)) {
    if (keep.has(dir)) continue
    // eslint-disable-next-line no-await-in-loop -- one removal after another
    await rm(dir, {force: true, recursive: true})
    removed.push(dir)
  }

  const notes = [
    ...removed.map((dir) => `removed ${dir}, left by a run that did not finish`),
    ...(await findPrevious(lock.paths)).map((dir) => previousNote(dir)),
  ]
  return {notes, removed}
}

export const previousNote = (dir: string) =>
  `the data as it was before a restore is kept in ${dir}: it may be the only copy of that data`

/** `br cleanup --data-dir`: takes the data dir's lock (exit 4 while a live run holds it), recovers, removes leftovers. */
export async function cleanupDataDir(
  dataDir: string,
  options: {cloneDir?: string; dryRun: boolean},
): Promise<CleanupResult> {
  const paths = await resolveDataDir(dataDir)
  const result: CleanupResult = {
    dataDir: paths.given,
    dryRun: options.dryRun,
    previous: [],
    recovered: [],
    removed: [],
    skipped: null,
  }
  if (options.dryRun) {
    const held = await readDataDirLock(paths)
    if (held?.state) {
      const stale = staleReason(held.state)
      if (!stale) {
        throw new BrError('locked', `data directory ${paths.given} is locked by a running ${held.state.command}`, {
          suggestions: ['wait for it to finish: its directories are its own'],
        })
      }

      const found = await recover(held.state, paths, {dryRun: true})
      result.recovered = found.notes
      result.removed = found.removed
    }

    result.removed = [...new Set([...(await findLeftovers(paths, options.cloneDir)), ...result.removed])].sort()
    result.previous = await findPrevious(paths)
    return result
  }

  const lock = await lockDataDir(dataDir, {command: 'br cleanup'})
  try {
    result.recovered = lock.recovered.notes
    result.removed = [...lock.recovered.removed, ...(await removeLeftovers(lock, {cloneDir: options.cloneDir})).removed]
    result.previous = await findPrevious(paths)
  } finally {
    await lock.release()
  }

  return result
}

/**
 * Cleans the data dirs this host backed up into `repo` (from its records, and `more`, e.g. the
 * data dir a dead writer named in its lock). A data dir locked by a live run is skipped, not an error.
 */
export async function cleanupRepositoryLeftovers(
  repo: Repository,
  options: {dryRun: boolean; more?: string[]},
): Promise<CleanupResult[]> {
  const here = hostname()
  const records = await repo.listBackups().catch(() => [])
  const dirs = new Set([
    ...(options.more ?? []),
    ...records.filter((r) => r.source.host === here).map((r) => r.source.dataDir),
  ])
  const results: CleanupResult[] = []
  for (const dataDir of [...dirs].sort()) {
    try {
      // eslint-disable-next-line no-await-in-loop -- one data dir after another, each under its lock
      results.push(await cleanupDataDir(dataDir, {dryRun: options.dryRun}))
    } catch (error) {
      if (!isBrError(error) || error.code !== 'locked') throw error
      results.push({
        dataDir,
        dryRun: options.dryRun,
        previous: [],
        recovered: [],
        removed: [],
        skipped: error.message,
      })
    }
  }

  return results
}

/**
 * Removes the lock temp files killed runs left at the repository root (lock.ts
 * staleLockTempFiles: only ones older than the stale limit, so never a live writer's); with
 * `dryRun`, only names them. Resolves to their paths.
 */
export async function removeStaleLockTempFiles(repo: Repository, options: {dryRun: boolean}): Promise<string[]> {
  const keys = await staleLockTempFiles(repo)
  for (const key of keys) {
    // eslint-disable-next-line no-await-in-loop -- a file or two
    if (!options.dryRun) await repo.backend.remove(key)
  }

  return keys.map((key) => `${repo.path}/${key}`)
}

/** What a dead run of `dataDir` left, without touching anything (for a run of another data dir that found its lock). */
export async function describeDeadRun(dataDir: string): Promise<string[]> {
  const paths = await resolveDataDir(dataDir)
  const held = await readDataDirLock(paths).catch(() => null)
  if (!held?.state || !staleReason(held.state)) return []
  const found = await recover(held.state, paths, {dryRun: true})
  return [...found.notes, ...found.removed.map((dir) => `${dir} is left over`)]
}

/** Lines for people: what a cleanup did, or would do. */
export function describeCleanup(result: CleanupResult): string[] {
  if (result.skipped) return [`skipped ${result.dataDir}: ${result.skipped}`]
  const verb = result.dryRun ? 'would remove' : 'removed'
  return [
    ...result.recovered,
    ...result.removed.map((dir) => `${verb} ${dir}`),
    ...result.previous.map((dir) => previousNote(dir)),
  ]
}

async function names(dir: string): Promise<string[]> {
  try {
    return await readdir(dir)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw error
  }
}
