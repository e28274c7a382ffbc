/**
 * One writer per repository: backup, delete and prune hold `lock.json` at the repository root
 * while they write. The lock names its holder (host, pid, command, start time) so that a refusal
 * can say who holds it.
 *
 * Guarantees: the lock is created with the backend's `createExclusive`, so two writers never both
 * hold it, and it is whole from the moment it is visible; a second writer fails at once with exit
 * 4 naming the holder, or polls for up to `waitSeconds`. While held, the lock is refreshed (a
 * heartbeat every REFRESH_MS rewrites it, atomically, with a new `refreshedAt`), after checking
 * that it still holds our bytes; a refresh that fails is told through `onRefreshError` (default:
 * `onWarning`), never swallowed, and the next beat tries again. A stale lock is taken over with a
 * warning, through `removeIf`, which only removes that very lock, so two takers cannot both win:
 * on this host, when its process is gone (the pid says more than a clock); from another host,
 * whose processes we cannot see, when it was not refreshed for STALE_AFTER_MS (30 minutes, as
 * restic). A lock written by an older version has no `refreshedAt`: its `startedAt` counts.
 * A lock found lost is never refreshed again, and `Unlock.checkHeld` fails (exit 4) from then on:
 * backup calls it before publishing its record, delete and prune before each removal.
 * Unlock stops the heartbeat and removes the lock only while it is still ours.
 * Not: a lease. A holder on this host that hangs keeps the lock until someone ends it; between a
 * refresh's check and its rewrite another host could take over a lock that had gone 30 minutes
 * unrefreshed (the next refresh then says the lock was lost). Readers (verify, restore, list) take
 * no lock.
 */
import {randomBytes} from 'node:crypto'
import {readFileSync} from 'node:fs'
import {hostname} from 'node:os'
import {setTimeout as sleep} from 'node:timers/promises'

import type {Repository} from './repository.js'

import {BrError, isBrError, throwIfAborted} from '../errors.js'
import {formatDuration} from '../format.js'
import {isMissing, type RepoBackend, STALE_REMOVAL_MS} from './backend.js'

export const LOCK_FILE = 'lock.json'
/** A lock from another host cannot be checked for life: this long without a refresh, it is presumed dead. */
export const STALE_AFTER_MS = 30 * 60 * 1000
/** How often a held lock is refreshed: well within STALE_AFTER_MS, so a slow beat or two never lose it. */
export const REFRESH_MS = 5 * 60 * 1000
const POLL_MS = 250
/**
 * A takeover another run won (or one killed in the middle left its removal marker, which every
 * backend honours for STALE_REMOVAL_MS): look again after this pause, this many times, before
 * counting the lock as held. A lock without a pause here was a tight loop of requests for minutes.
 */
export const TAKEOVER_PAUSE_MS = 50
export const TAKEOVER_TRIES = 20

/**
 * One attempt at a lock, the repository's or a data dir's: `create` takes it (the backend's
 * conditional create), or `look` reads who holds it. A lock released between the two is tried
 * again. A name that neither takes a new lock nor reads as one (a dangling symlink) would be that
 * forever: after TAKEOVER_TRIES looks in a row (pausing from the second) it is `damaged`. Only
 * looks in a row count: a lock that other runs take and release while this one waits
 * (--wait-lock) is often gone between an attempt and a look, and is not damaged. `creates`: the
 * attempts it made.
 */
export async function takeOrLook<Held>(attempt: {
  create: () => Promise<boolean>
  damaged: () => Error
  look: () => Promise<Held | undefined>
  signal?: AbortSignal
}): Promise<{creates: number} & ({held: Held} | {taken: true})> {
  for (let creates = 1, vanished = 0; ; creates++) {
    throwIfAborted(attempt.signal)
    // Each step needs the previous one's answer.
    // eslint-disable-next-line no-await-in-loop
    if (await attempt.create()) return {creates, taken: true}
    // eslint-disable-next-line no-await-in-loop
    const held = await attempt.look()
    if (held) return {creates, held}
    if (++vanished > TAKEOVER_TRIES) throw attempt.damaged()
    // eslint-disable-next-line no-await-in-loop
    if (vanished > 1) await pause(TAKEOVER_PAUSE_MS, attempt.signal)
  }
}

export interface LockHolder {
  command: string
  /** the data dir a backup reads: the next writer says what a dead backup left there */
  dataDir?: string
  host: string
  pid: number
  /** the last heartbeat (absent in locks of older versions: startedAt stands for it) */
  refreshedAt?: string
  startedAt: string
  /** tells two locks of the same process apart */
  token: string
}

export interface LockOptions {
  /** what the holder is doing, e.g. 'br backup': shown to whoever finds the repository locked */
  command: string
  /** the data dir this writer reads (a backup), recorded in the lock */
  dataDir?: string
  /** told when a refresh of the held lock failed (default: onWarning with a sentence) */
  onRefreshError?: (error: Error) => void
  /** called with the dead holder, after its stale lock was taken over */
  onTakeOver?: (holder: LockHolder) => Promise<void> | void
  /** told when a stale lock was taken over */
  onWarning?: (message: string) => void
  /** how often the held lock is refreshed; default REFRESH_MS */
  refreshMs?: number
  signal?: AbortSignal
  /** how long a lock from another host may go unrefreshed before it is stale; default STALE_AFTER_MS */
  staleAfterMs?: number
  /** how long to wait for the holder to release it; 0 (default): fail at once */
  waitSeconds?: number
}

/** Releases the held lock (stops its heartbeat; removes it while it is still ours); safe to call twice. */
export interface Unlock {
  (): Promise<void>
  /**
   * Resolves while the lock is still ours; else fails with exit 4 naming the repository: called
   * right before a write only the holder may make (publishing a backup, deleting one), so that a
   * run whose lock was taken over stops instead of writing beside the new holder. `doing` says
   * what was not done, e.g. 'publishing backup <id>'.
   */
  checkHeld(doing: string): Promise<void>
  /** why the lock is no longer ours, once a refresh or checkHeld found it so; else undefined */
  readonly lost: string | undefined
}

/** Takes the repository's writer lock; resolves to the function that releases it. */
export async function acquireLock(repo: Repository, options: LockOptions): Promise<Unlock> {
  const {backend} = repo
  const startedAt = new Date().toISOString()
  const mine: LockHolder = {
    command: options.command,
    ...(options.dataDir ? {dataDir: options.dataDir} : {}),
    host: hostname(),
    pid: process.pid,
    refreshedAt: startedAt,
    startedAt,
    token: randomBytes(8).toString('hex'),
  }
  const bytes = Buffer.from(JSON.stringify(mine) + '\n')
  const waitMs = (options.waitSeconds ?? 0) * 1000
  const deadline = Date.now() + waitMs
  let lostTakeovers = 0
  for (;;) {
    // eslint-disable-next-line no-await-in-loop
    const attempt = await takeOrLook({
      create: async () => backend.createExclusive(LOCK_FILE, bytes),
      damaged: () => damagedLock(repo),
      look: async () => readLock(repo),
      signal: options.signal,
    })
    if ('taken' in attempt) return holdLock(repo, mine, bytes, options)
    const {held} = attempt
    if (!held.holder) throw damagedLock(repo)

    const stale = staleReason(held.holder, Date.now(), options.staleAfterMs)
    if (stale) {
      // eslint-disable-next-line no-await-in-loop
      if (await backend.removeIf(LOCK_FILE, held.bytes)) {
        options.onWarning?.(`took over a stale lock of ${describeHolder(held.holder)}: ${stale}`)
        // eslint-disable-next-line no-await-in-loop -- once, after the takeover
        await options.onTakeOver?.(held.holder)
        continue
      }

      if (++lostTakeovers <= TAKEOVER_TRIES) {
        // eslint-disable-next-line no-await-in-loop
        await pause(TAKEOVER_PAUSE_MS, options.signal)
        continue
      }
    }

    if (Date.now() >= deadline) {
      const taking = stale
        ? `, whose lock another run is taking over (${stale}; a run killed while taking it over leaves ${LOCK_FILE}.removing-…, honoured for ${minutes(STALE_REMOVAL_MS)})`
        : ''
      throw new BrError(
        'locked',
        `repository ${repo.path} is ${waitMs > 0 ? `still locked after ${formatDuration(waitMs)}` : 'locked'} by ${describeHolder(held.holder)}${taking}`,
        {
          suggestions: [
            waitMs > 0
              ? 'wait for it to finish, or pass a longer --wait-lock SECONDS'
              : 'wait for it to finish, or pass --wait-lock SECONDS to wait for it',
            `if that process no longer runs (its host is down), remove ${lockPath(repo)}`,
          ],
        },
      )
    }

    // eslint-disable-next-line no-await-in-loop
    await pause(Math.min(POLL_MS, Math.max(0, deadline - Date.now())), options.signal)
  }
}

const damagedLock = (repo: Repository) =>
  new BrError('locked', `repository ${repo.path} has a damaged lock ${LOCK_FILE}`, {
    suggestions: [`if no backup, delete or prune runs on it, remove ${lockPath(repo)}`],
  })

/** Waits `ms`; an abort ends the wait as interrupted (exit 130). */
async function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  try {
    await sleep(ms, undefined, {signal})
  } catch (error) {
    throwIfAborted(signal)
    throw error
  }
}

/**
 * The held lock: a heartbeat rewrites it with a new refreshedAt every `refreshMs`, one beat at a
 * time, and stops for good once the lock is found lost; unlock stops the heartbeat, waits for a
 * beat under way, and removes the lock if it is still ours.
 */
function holdLock(repo: Repository, mine: LockHolder, first: Buffer, options: LockOptions): Unlock {
  const {backend} = repo
  let bytes = first
  let lost: string | undefined
  let beat: Promise<void> = Promise.resolve()
  const report =
    options.onRefreshError ??
    ((error: Error) =>
      options.onWarning?.(
        `could not refresh the lock of repository ${repo.path}: ${error.message} (another writer may take it over once it is ${minutes(options.staleAfterMs ?? STALE_AFTER_MS)} old)`,
      ))
  const refresh = async () => {
    const next = Buffer.from(JSON.stringify({...mine, refreshedAt: new Date().toISOString()}) + '\n')
    await rewriteHeld(backend, LOCK_FILE, bytes, next)
    bytes = next
  }

  /** Notes a lock found lost (another writer's now: not ours to refresh again); other errors are left to the caller. */
  const lose = (error: unknown): boolean => {
    if (!isBrError(error) || error.code !== 'locked') return false
    lost ??= error.message
    clearInterval(timer)
    return true
  }

  const timer = setInterval(() => {
    beat = beat.then(refresh).catch((error: unknown) => {
      lose(error)
      report(error as Error)
    })
  }, options.refreshMs ?? REFRESH_MS)
  // A held lock never keeps the process alive by itself.
  timer.unref()
  const unlock = async () => {
    clearInterval(timer)
    await beat
    await backend.removeIf(LOCK_FILE, bytes)
  }

  const checkHeld = async (doing: string) => {
    // After a beat under way, so that its rewrite is what we compare against.
    const check = beat.then(async () => {
      if (lost !== undefined) return
      await expectHeld(backend, LOCK_FILE, bytes).catch((error: unknown) => {
        // A lock we cannot read is not known to be ours: the caller stops with that error.
        if (!lose(error)) throw error
      })
    })
    beat = check.catch(() => {})
    await check
    if (lost !== undefined) {
      throw new BrError('locked', `lost the lock of repository ${repo.path} (${lost}): stopped before ${doing}`, {
        suggestions: [
          `let whoever holds ${lockPath(repo)} now finish, then run this again (\`moctl br list --path ${repo.path}\` shows what is there)`,
        ],
      })
    }
  }

  // A getter, not a copied value: `lost` says what the heartbeat found since.
  return Object.defineProperties(unlock, {
    checkHeld: {value: checkHeld},
    lost: {get: () => lost},
  }) as Unlock
}

/**
 * Fails with BrError 'locked' unless the lock at `key` holds exactly `expected`: taken over by
 * another writer, or removed.
 */
async function expectHeld(backend: RepoBackend, key: string, expected: Buffer): Promise<void> {
  const held = await backend.load(key).catch((error: unknown) => {
    if (isMissing(error)) return null
    throw error
  })
  if (!held?.equals(expected)) {
    throw new BrError('locked', held ? 'another writer took it over' : `${key} was removed while this run held it`)
  }
}

/**
 * A refresh: rewrites the lock at `key` with `next` only after checking it still holds our
 * `expected` bytes, so that a lock taken over is never written over. Between the check and the
 * rewrite another writer could take over a lock that had gone unrefreshed past the stale limit:
 * the next check then says it was lost. Shared with the data dir's lock (datadir-lock.ts).
 */
export async function rewriteHeld(backend: RepoBackend, key: string, expected: Buffer, next: Buffer): Promise<void> {
  await expectHeld(backend, key, expected)
  await backend.save(key, next)
}

/**
 * What a run killed in the middle of writing the lock left at the repository root (a heartbeat's
 * `lock.json.tmp-…`, a takeover's `lock.json.removing-…`), once older than `staleAfterMs`: no live
 * writer keeps such a file for more than the moment of its rename, so these are dead.
 */
export async function staleLockTempFiles(
  repo: Repository,
  now = Date.now(),
  staleAfterMs = STALE_AFTER_MS,
): Promise<string[]> {
  const found = await repo.backend.listLeftovers(`${LOCK_FILE}.`)
  return found.filter((f) => !f.key.includes('/') && now - f.modifiedMs > staleAfterMs).map((f) => f.key)
}

/**
 * Why a holder is presumed dead, or null when it may be alive. On this host: its pid is gone, or
 * now belongs to a process started after the lock (the pid was reused, e.g. after a reboot).
 * From another host: it was not refreshed for `staleAfterMs` (an older version's lock, never
 * refreshed: since it started).
 */
export function staleReason(holder: LockHolder, now = Date.now(), staleAfterMs = STALE_AFTER_MS): null | string {
  const since = Date.parse(holder.startedAt)
  if (holder.host !== hostname()) {
    const refreshed = holder.refreshedAt === undefined ? since : Date.parse(holder.refreshedAt)
    return now - refreshed > staleAfterMs
      ? `a lock from another host not refreshed for over ${minutes(staleAfterMs)} is presumed dead`
      : null
  }

  if (!pidAlive(holder.pid)) return `pid ${holder.pid} no longer runs`
  const started = processStartedAt(holder.pid)
  // A minute of slack: the lock is written a moment after its process started.
  if (started !== undefined && started > since + 60_000) return `pid ${holder.pid} is now another process`
  return null
}

/** '30 min', or a short duration to the second (tests pass short ones in). */
const minutes = (ms: number) => (ms >= 60_000 ? `${Math.round(ms / 60_000)} min` : formatDuration(ms))

function describeHolder(h: LockHolder): string {
  return `${h.command} (pid ${h.pid} on host ${h.host} since ${h.startedAt})`
}

const lockPath = (repo: Repository) => `${repo.path}/${LOCK_FILE}`

/** The lock's bytes and holder (undefined when unreadable), or undefined when there is no lock. */
async function readLock(repo: Repository): Promise<undefined | {bytes: Buffer; holder?: LockHolder}> {
  let bytes: Buffer
  try {
    bytes = await repo.backend.load(LOCK_FILE)
  } catch (error) {
    // A FIFO, a directory, a huge file: refused unread by the backend, and never a lock of ours.
    if (isBrError(error)) {
      throw new BrError('locked', `repository ${repo.path} has a damaged lock: ${error.message}`, {
        suggestions: [`if no backup, delete or prune runs on it, remove ${lockPath(repo)}`],
      })
    }

    // Gone: released, or being taken over. Whatever is there by now, the caller's next attempt sees.
    if (isMissing(error)) return undefined
    throw error
  }

  try {
    const holder: unknown = JSON.parse(bytes.toString('utf8'))
    return {bytes, holder: isLockHolder(holder) ? holder : undefined}
  } catch {
    return {bytes}
  }
}

/** A lock's holder as this or an older version wrote it (no refreshedAt), shared with the data dir's lock. */
export function isLockHolder(value: unknown): value is LockHolder {
  const holder = value as LockHolder
  return (
    typeof holder === 'object' &&
    holder !== null &&
    typeof holder.pid === 'number' &&
    typeof holder.host === 'string' &&
    typeof holder.command === 'string' &&
    !Number.isNaN(Date.parse(holder.startedAt)) &&
    (holder.refreshedAt === undefined || !Number.isNaN(Date.parse(holder.refreshedAt)))
  )
}

/**
 * Whether a process runs. A killed process that its parent has not reaped yet (a zombie: a
 * `kill -9`ed backup under a busy cron shell or a container's init) still answers signal 0, but
 * it will never release its lock: it counts as gone (Linux, from /proc; elsewhere signal 0 decides).
 * Only a positive integer names one process: signal 0 to pid 0 or -1 reaches our own group or every
 * process, so a lock file that says `"pid": 0` would never go stale.
 */
export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
  } catch (error) {
    // EPERM: it exists, it is just not ours to signal.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false
  }

  return processState(pid) !== 'Z'
}

/** The state letter of /proc/<pid>/stat (R, S, D, Z…); Linux only, undefined elsewhere. */
function processState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Field 3, after the ')' that ends field 2 (the command name may itself hold ') ').
    return stat.slice(stat.lastIndexOf(')') + 2)[0]
  } catch {
    return undefined
  }
}

/** When a process started, in ms since the epoch; Linux only (/proc), undefined elsewhere. */
function processStartedAt(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Field 22 (starttime, in clock ticks since boot) counted after the ')' that ends field 2.
    const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19])
    const bootSeconds = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1])
    // USER_HZ is 100 on every Linux architecture's user-space ABI.
    const started = bootSeconds * 1000 + (ticks / 100) * 1000
    return Number.isFinite(started) && bootSeconds > 0 ? started : undefined
  } catch {
    return undefined
  }
}
