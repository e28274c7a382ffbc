/**
 * One run at a time per data directory: restore, a cold backup that stops the service, and
 * cleanup hold `.<name>.moctl-br.lock` beside the data directory (beside its real target when
 * the data dir is a symlink), and keep in it what a crash would leave behind: the service they
 * stopped and how to start it, the scratch directories they made (restore staging, --clone
 * copies), and where the swap of a restore stands.
 *
 * Guarantees: two runs never both hold the lock (created with link(2), taken over through a
 * rename-aside compare, as the repository lock); a second run fails at once with exit 4 naming
 * the holder; the lock is refreshed while held (rewritten only while it still holds our bytes,
 * as the repository lock: a run that finds it lost stops refreshing, and its next update fails
 * with exit 4, so a restore never swaps nor a backup stops a service after a takeover), and one
 * whose process is gone on this host (or, from another host sharing the directory, not refreshed
 * for 30 minutes) is taken over, with the repository lock's rules (repo/lock.ts `staleReason`),
 * and what its run left is handled first and said out loud: the service it stopped (with the command that starts it),
 * its scratch directories (removed: their owner is dead), and a swap it did not finish (a restore
 * that died between its two renames is undone, since the previous data is then whole and nothing
 * else is in the target's place; one that died after both is reported, never undone, and the
 * previous data is never deleted). The lock holds no secret: the start command is what the
 * operator configured, and the lock file is mode 0600.
 * Not: protection against a run that ignores the lock (an older moctl br, or a person).
 */
import {randomBytes} from 'node:crypto'
import {lstat, readlink, realpath, rename, rm} from 'node:fs/promises'
import {hostname} from 'node:os'
import {basename, dirname, join, resolve} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import {BrError, isBrError} from './errors.js'
import {STALE_REMOVAL_MS} from './repo/backend.js'
import {FsBackend} from './repo/fs.js'
import {
  isLockHolder,
  type LockHolder,
  REFRESH_MS,
  rewriteHeld,
  staleReason,
  takeOrLook,
  TAKEOVER_PAUSE_MS,
  TAKEOVER_TRIES,
} from './repo/lock.js'

/** Where a data directory really is: the directory a symlinked data dir points to. */
export interface DataDirPaths {
  /** as the operator gave it */
  given: string
  /** the lock file */
  lock: string
  /** basename of `real` */
  name: string
  /** dirname of `real`: staging, clones and `.before-<id>` go here, on the same filesystem */
  parent: string
  /** the directory itself (a symlink's target, resolved); may not exist yet */
  real: string
}

export interface DataDirState extends LockHolder {
  /** the backup taken or restored */
  backupId?: string
  /** the real data dir */
  dataDir: string
  /** scratch directories this run made (staging, clone): removed when it is found dead */
  scratch: string[]
  /** set before the service is stopped, cleared once it was started again */
  service?: {describe: string; start: string}
  /** restore: set just before the first rename of the swap */
  swap?: {phase: 'swapped' | 'swapping'; previous: null | string; staging: string}
}

/** What a dead holder left: lines for people (its service, its swap), and the scratch directories removed. */
export interface Recovery {
  notes: string[]
  removed: string[]
}

export interface DataDirLock {
  /**
   * Stops the heartbeat and leaves the lock in place, with its state: for a run that ends with
   * the service down (it failed to start again), so that the next run says what is where.
   */
  keep(): Promise<void>
  /** why the lock is no longer ours (taken over, removed), once a refresh or an update found it so */
  readonly lost: string | undefined
  paths: DataDirPaths
  /** what the lock's dead previous holder left, when it was taken over */
  recovered: Recovery
  /** releases the lock if it is still ours; safe to call twice */
  release(): Promise<void>
  state: DataDirState
  /** records a change of state in the lock (atomic rename); fails with exit 4 once the lock is lost */
  update(change: Partial<Pick<DataDirState, 'backupId' | 'scratch' | 'service' | 'swap'>>): Promise<void>
}

export interface DataDirLockOptions {
  backupId?: string
  /** what the holder does, e.g. 'br restore' */
  command: string
  /** told, one line each, what a dead run left and what was done about it, and a failed refresh */
  onWarning?: (message: string) => void
  /** how often the held lock is refreshed; default REFRESH_MS */
  refreshMs?: number
}

/** Resolves a data dir to where it really is; a symlink (even a dangling one) is followed. */
export async function resolveDataDir(dataDir: string): Promise<DataDirPaths> {
  const given = resolve(dataDir)
  let real: string
  try {
    real = await realpath(given)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    let target = given
    // A dangling link: the directory it names will be created.
    const info = await lstat(given).catch(() => null)
    if (info?.isSymbolicLink()) target = resolve(dirname(given), await readlink(given))
    const parent = await realpath(dirname(target)).catch(() => dirname(target))
    real = join(parent, basename(target))
  }

  const parent = dirname(real)
  const name = basename(real)
  return {given, lock: join(parent, lockName(name)), name, parent, real}
}

export const lockName = (name: string) => `.${name}.moctl-br.lock`

/** Takes the data dir's lock, handling and reporting what a dead holder left; exit 4 while a live run holds it. */
export async function lockDataDir(dataDir: string, options: DataDirLockOptions): Promise<DataDirLock> {
  const paths = await resolveDataDir(dataDir)
  const backend = new FsBackend(paths.parent)
  const key = lockName(paths.name)
  const state: DataDirState = {
    backupId: options.backupId,
    command: options.command,
    dataDir: paths.real,
    host: hostname(),
    pid: process.pid,
    scratch: [],
    startedAt: new Date().toISOString(),
    token: randomBytes(8).toString('hex'),
  }
  state.refreshedAt = state.startedAt
  let bytes = encode(state)
  const recovered: Recovery = {notes: [], removed: []}
  let lostTakeovers = 0
  // Attempts to create the lock, those that found it vanished before the look included.
  let creates = 0
  for (;;) {
    // eslint-disable-next-line no-await-in-loop
    const attempt = await takeOrLook({
      create: async () => backend.createExclusive(key, bytes),
      damaged: () => damagedLock(paths),
      look: async () => readDataDirLock(paths),
    })
    creates += attempt.creates
    if ('taken' in attempt) break
    const {held} = attempt
    if (!held.state) throw damagedLock(paths)

    const stale = staleReason(held.state)
    if (!stale) {
      throw new BrError('locked', `data directory ${paths.given} is locked by ${describeRun(held.state)}`, {
        suggestions: [
          'wait for it to finish: one backup, restore or cleanup of a data directory at a time',
          `if that process no longer runs (its host is down), run \`moctl br cleanup --data-dir ${paths.given}\` there, or remove ${paths.lock}`,
        ],
      })
    }

    // eslint-disable-next-line no-await-in-loop
    if (!(await backend.removeIf(key, held.bytes))) {
      // Someone else is taking it over (or one killed doing so left its marker): look again shortly.
      if (++lostTakeovers > TAKEOVER_TRIES) {
        throw new BrError(
          'locked',
          `data directory ${paths.given} is locked by ${describeRun(held.state)}, whose lock another run is taking over (${stale})`,
          {
            suggestions: [
              `run this again in a moment; a run killed while taking it over leaves ${basename(paths.lock)}.removing-… beside it, honoured for ${STALE_REMOVAL_MS / 60_000} minutes: remove it and ${paths.lock} if none runs`,
            ],
          },
        )
      }

      // eslint-disable-next-line no-await-in-loop
      await sleep(TAKEOVER_PAUSE_MS)
      continue
    }

    options.onWarning?.(`took over the lock of ${paths.given} from ${describeRun(held.state)}: ${stale}`)
    // eslint-disable-next-line no-await-in-loop
    const found = await recover(held.state, paths, {dryRun: false})
    for (const line of found.notes) options.onWarning?.(line)
    for (const dir of found.removed) options.onWarning?.(`removed ${dir}, left by ${describeRunShort(held.state)}`)
    recovered.notes.push(...found.notes)
    recovered.removed.push(...found.removed)
    if (creates > 11) throw new BrError('locked', `could not take the lock of ${paths.given}`)
  }

  let released = false
  let lost: string | undefined
  // One write at a time: a heartbeat and a change of state never interleave.
  let writing: Promise<void> = Promise.resolve()
  const write = (change: Partial<DataDirState>) => {
    const done = writing.then(async () => {
      if (lost !== undefined) throw lostError(paths, lost)
      const refreshedAt = new Date().toISOString()
      const next = encode({...state, ...change, refreshedAt})
      try {
        // The repository lock's rule: rewritten only while it still holds our bytes, so that a
        // run that took it over (ours looked dead to it) is never written over.
        await rewriteHeld(backend, key, bytes, next)
      } catch (error) {
        if (!isBrError(error) || error.code !== 'locked') throw error
        lost = error.message
        clearInterval(timer)
        throw lostError(paths, lost)
      }

      Object.assign(state, change, {refreshedAt})
      bytes = next
    })
    writing = done.catch(() => {})
    return done
  }

  // The same heartbeat as the repository lock's (repo/lock.ts): another host's view of a shared
  // data dir sees it refreshed, and never takes it over while this run lives. Once lost, it stops.
  const timer = setInterval(() => {
    write({}).catch((error: unknown) =>
      options.onWarning?.(
        lost === undefined
          ? `could not refresh the lock of ${paths.given}: ${(error as Error).message}`
          : `the lock of ${paths.given} is no longer this run's (${lost}): its refresh stopped, and the run stops before its next step that needs it`,
      ),
    )
  }, options.refreshMs ?? REFRESH_MS)
  timer.unref()
  return {
    async keep() {
      released = true
      clearInterval(timer)
      await writing
    },
    get lost() {
      return lost
    },
    paths,
    recovered,
    async release() {
      if (released) return
      released = true
      clearInterval(timer)
      await writing
      await backend.removeIf(key, bytes)
    },
    state,
    async update(change) {
      await write(change)
    },
  }
}

const damagedLock = (paths: DataDirPaths) =>
  new BrError('locked', `data directory ${paths.given} has a damaged lock ${paths.lock}`, {
    suggestions: [`if no backup, restore or cleanup of it runs, remove ${paths.lock}`],
  })

/** Exit 4: the run whose data dir lock was taken over stops before its next change of state. */
function lostError(paths: DataDirPaths, why: string): BrError {
  return new BrError('locked', `lost the lock of data directory ${paths.given} (${why}): this run stops here`, {
    suggestions: [`another run holds ${paths.lock} now: let it finish, then check ${paths.given} and run this again`],
  })
}

/** The lock's bytes and state (undefined when unreadable), or undefined when there is none. */
export async function readDataDirLock(paths: DataDirPaths): Promise<undefined | {bytes: Buffer; state?: DataDirState}> {
  let bytes: Buffer
  try {
    bytes = await new FsBackend(paths.parent).load(lockName(paths.name))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    if (isBrError(error)) return {bytes: Buffer.alloc(0)} // a FIFO or a huge file: damaged
    throw error
  }

  try {
    const state: unknown = JSON.parse(bytes.toString('utf8'))
    const valid = isLockHolder(state) && Array.isArray((state as DataDirState).scratch)
    return {bytes, state: valid ? (state as DataDirState) : undefined}
  } catch {
    return {bytes}
  }
}

/**
 * What a dead run left, said out loud, and handled unless `dryRun`: the service it stopped, its
 * scratch directories (removed), a swap it did not finish (undone when it died between the two
 * renames; reported, never undone, after both).
 */
export async function recover(dead: DataDirState, paths: DataDirPaths, options: {dryRun: boolean}): Promise<Recovery> {
  const lines: string[] = []
  const removed: string[] = []
  const run = describeRunShort(dead)
  const target = paths.real
  const {swap} = dead
  if (swap && swap.previous && isOurs(swap.previous, paths, 'before')) {
    const targetThere = await present(target)
    const previousThere = await present(swap.previous)
    if (!targetThere && previousThere) {
      if (!options.dryRun) await rename(swap.previous, target)
      lines.push(
        `${run} died between the two renames of its swap: ${options.dryRun ? 'would put' : 'put'} the previous data back from ${swap.previous} into ${target}`,
      )
    } else if (targetThere && previousThere) {
      lines.push(
        `${run} died after swapping in the restored data, before it was checked: ${target} holds the restored data, the previous data is kept in ${swap.previous} (the only copy of it)`,
        `to go back to the previous data: stop the service, then \`mv ${target} ${target}.failed-${dead.backupId} && mv ${swap.previous} ${target}\``,
      )
    }
  }

  if (dead.service) {
    lines.push(
      `the service was stopped by ${run}, which did not finish (pid ${dead.pid} died): it may still be down; start it with: ${dead.service.start}`,
    )
  }

  for (const dir of dead.scratch) {
    // eslint-disable-next-line no-await-in-loop -- one directory after another
    if (!isOurs(dir, paths, 'scratch') || !(await present(dir))) continue
    // eslint-disable-next-line no-await-in-loop
    if (!options.dryRun) await rm(dir, {force: true, recursive: true})
    removed.push(dir)
  }

  return {notes: lines, removed}
}

/** The name patterns of our own directories: nothing a damaged or forged lock names beyond them is touched. */
export function isOurs(dir: string, paths: DataDirPaths, kind: 'before' | 'scratch'): boolean {
  const name = basename(dir)
  if (kind === 'before') return dirname(dir) === paths.parent && name.startsWith(`${paths.name}.before-`)
  // A clone may live in --clone-dir: its name says whose it is.
  return (
    (dirname(dir) === paths.parent && name.startsWith(`.${paths.name}.restore-`)) ||
    name.startsWith(`.${paths.name}.clone-`)
  )
}

function describeRun(s: DataDirState): string {
  return `${s.command}${s.backupId ? ` ${s.backupId}` : ''} (pid ${s.pid} on host ${s.host} since ${s.startedAt})`
}

/** 'backup <id>', 'restore <id>', 'cleanup' */
function describeRunShort(s: DataDirState): string {
  return `${s.command.replace(/^br /, '')}${s.backupId ? ` ${s.backupId}` : ''}`
}

const encode = (state: DataDirState) => Buffer.from(JSON.stringify(state) + '\n')

async function present(path: string): Promise<boolean> {
  try {
    await lstat(path)
    return true
  } catch {
    return false
  }
}
