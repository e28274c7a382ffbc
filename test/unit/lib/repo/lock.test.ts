/**
 * The repository lock on real files, with real second processes: a child `node -e` holding the
 * lock, a process that has exited (its pid is gone), and many takers racing in one process.
 */
import {type ChildProcess, spawn, spawnSync} from 'node:child_process'
import {once} from 'node:events'
import {readdir, readFile, rm, symlink, utimes, writeFile} from 'node:fs/promises'
import {hostname} from 'node:os'
import {basename, join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {BrError} from '../../../../src/lib/errors.js'
import {type LoadOptions, STALE_REMOVAL_MS} from '../../../../src/lib/repo/backend.js'
import {FsBackend, removalMarker} from '../../../../src/lib/repo/fs.js'
import {
  acquireLock,
  LOCK_FILE,
  type LockHolder,
  pidAlive,
  staleReason,
  takeOrLook,
  TAKEOVER_TRIES,
} from '../../../../src/lib/repo/lock.js'
import {openRepository, Repository} from '../../../../src/lib/repo/repository.js'
import {tempDir} from '../../../helpers/cli.js'

let tmp: {cleanup: () => Promise<void>; path: string}
let repo: Repository
let children: ChildProcess[] = []
beforeEach(async () => {
  tmp = await tempDir()
  repo = await openRepository(join(tmp.path, 'repo'), {create: true})
})
afterEach(async () => {
  for (const child of children) child.kill('SIGKILL')
  children = []
  await tmp.cleanup()
})

const lockFile = () => join(repo.path, LOCK_FILE)
const readHolder = async (): Promise<LockHolder> => JSON.parse(await readFile(lockFile(), 'utf8'))
const holder = (pid: number, over: Partial<LockHolder> = {}) =>
  JSON.stringify({
    command: 'br backup',
    host: hostname(),
    pid,
    startedAt: new Date().toISOString(),
    token: 't',
    ...over,
  })

/** A pid that belonged to a process that has exited. */
const deadPid = () => Number(spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim())

/** A child node process that writes a lock naming itself, the way acquireLock does, and stays alive. */
async function childHoldingLock(): Promise<ChildProcess> {
  const script = `
    const fs = require('node:fs'), os = require('node:os')
    const holder = {command: 'br prune', host: os.hostname(), pid: process.pid, startedAt: new Date().toISOString(), token: 'child'}
    fs.writeFileSync(process.argv[1] + '.tmp', JSON.stringify(holder) + '\\n')
    fs.linkSync(process.argv[1] + '.tmp', process.argv[1])
    fs.unlinkSync(process.argv[1] + '.tmp')
    console.log('locked')
    setInterval(() => {}, 1000)`
  const child = spawn(process.execPath, ['-e', script, lockFile()], {stdio: ['ignore', 'pipe', 'inherit']})
  children.push(child)
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve())
    child.once('exit', (code) => reject(new Error(`lock holder exited early (${code})`)))
  })
  return child
}

/** create answers from `creates` (false: taken by someone), look from `looks` (undefined: gone). */
const attemptWith = (creates: boolean[], looks: (string | undefined)[]) => ({
  create: async () => creates.shift() ?? false,
  damaged: () => new Error('damaged'),
  look: async () => looks.shift(),
})

describe('takeOrLook', () => {
  it('takes the lock, or says who holds it, with the attempts it made', async () => {
    expect(await takeOrLook(attemptWith([true], []))).toEqual({creates: 1, taken: true})
    expect(await takeOrLook(attemptWith([false], ['them']))).toEqual({creates: 1, held: 'them'})
    // Gone between an attempt and a look, three times: each is an attempt.
    const flicker = attemptWith([false, false, false, true], [undefined, undefined, undefined])
    expect(await takeOrLook(flicker)).toEqual({creates: 4, taken: true})
  })

  it('calls a name that neither takes a lock nor reads as one damaged after TAKEOVER_TRIES looks in a row', async () => {
    let looks = 0
    const never = {
      create: async () => false,
      damaged: () => new Error('damaged'),
      async look() {
        looks++
      },
    }
    await expect(takeOrLook(never)).rejects.toThrow('damaged')
    expect(looks).toBe(TAKEOVER_TRIES + 1)
  })

  it('stops at an abort before the next attempt', async () => {
    const controller = new AbortController()
    controller.abort()
    await expect(takeOrLook({...attemptWith([true], []), signal: controller.signal})).rejects.toMatchObject({
      code: 'interrupted',
    })
  })
})

describe('acquireLock', () => {
  it('is exclusive: a second writer fails at once with exit 4 naming the holder; free again after unlock', async () => {
    const unlock = await acquireLock(repo, {command: 'br backup'})
    const started = Date.now()
    const error = await acquireLock(repo, {command: 'br prune'}).catch((error_: unknown) => error_)
    expect(Date.now() - started).toBeLessThan(1000)
    expect(error).toBeInstanceOf(BrError)
    expect(error).toMatchObject({
      code: 'locked',
      exitCode: 4,
      message: expect.stringMatching(
        new RegExp(
          `^repository ${repo.path} is locked by br backup \\(pid ${process.pid} on host ${hostname()} since \\d{4}-`,
        ),
      ),
    })
    expect((error as BrError).suggestions[0]).toContain('--wait-lock SECONDS')
    await unlock()
    expect((await readdir(repo.path)).filter((name) => name.startsWith(LOCK_FILE))).toEqual([])
    const again = await acquireLock(repo, {command: 'br prune'})
    expect((await readHolder()).command).toBe('br prune')
    await again()
  })

  it('writes host, pid, command and start time into lock.json at the repository root', async () => {
    const before = Date.now()
    const unlock = await acquireLock(repo, {command: 'br delete'})
    const lock = await readHolder()
    expect(lock).toMatchObject({command: 'br delete', host: hostname(), pid: process.pid})
    expect(Date.parse(lock.startedAt)).toBeGreaterThanOrEqual(before - 1000)
    await unlock()
  })

  it('waits with waitSeconds until the holder releases', async () => {
    const unlock = await acquireLock(repo, {command: 'br backup'})
    setTimeout(() => unlock(), 600)
    const started = Date.now()
    const mine = await acquireLock(repo, {command: 'br delete', waitSeconds: 10})
    expect(Date.now() - started).toBeGreaterThanOrEqual(500)
    expect((await readHolder()).command).toBe('br delete')
    await mine()
  })

  it('gives up after waitSeconds, saying how long it waited', async () => {
    const unlock = await acquireLock(repo, {command: 'br backup'})
    const started = Date.now()
    await expect(acquireLock(repo, {command: 'br prune', waitSeconds: 1})).rejects.toMatchObject({
      exitCode: 4,
      message: expect.stringContaining('is still locked after 1.0s by br backup'),
    })
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000)
    expect(Date.now() - started).toBeLessThan(3000)
    await unlock()
  })

  it('stops waiting when aborted (exit 130)', async () => {
    const unlock = await acquireLock(repo, {command: 'br backup'})
    const abort = new AbortController()
    setTimeout(() => abort.abort(), 300)
    await expect(acquireLock(repo, {command: 'br prune', signal: abort.signal, waitSeconds: 30})).rejects.toMatchObject(
      {code: 'interrupted', exitCode: 130},
    )
    await unlock()
  })

  it("respects another live process's lock, and takes it over once that process is killed", async () => {
    const child = await childHoldingLock()
    await expect(acquireLock(repo, {command: 'br backup'})).rejects.toMatchObject({
      exitCode: 4,
      message: expect.stringContaining(`locked by br prune (pid ${child.pid} on host ${hostname()}`),
    })
    const exited = new Promise((resolve) => {
      child.once('exit', resolve)
    })
    child.kill('SIGKILL')
    await exited
    const warnings: string[] = []
    const unlock = await acquireLock(repo, {command: 'br backup', onWarning: (m) => warnings.push(m)})
    expect(warnings).toEqual([
      expect.stringMatching(
        new RegExp(`^took over a stale lock of br prune \\(pid ${child.pid} .*: pid ${child.pid} no longer runs$`),
      ),
    ])
    expect(await readHolder()).toMatchObject({command: 'br backup', pid: process.pid})
    await unlock()
  })

  it('lets exactly one of many concurrent takers have a free lock, or a stale one', async () => {
    for (const existing of [null, holder(deadPid())]) {
      if (existing) await writeFile(lockFile(), existing)
      const outcomes = await Promise.allSettled(
        Array.from({length: 8}, (_, i) => acquireLock(repo, {command: `taker ${i}`})),
      )
      const winners = outcomes.filter((o) => o.status === 'fulfilled')
      expect(winners).toHaveLength(1)
      const losers = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected')
      const {command} = await readHolder()
      for (const loser of losers) expect(loser.reason.message).toContain(`locked by ${command} (pid ${process.pid}`)
      await (winners[0] as PromiseFulfilledResult<() => Promise<void>>).value()
    }
  })

  it('a stale lock another run is taking over (its fresh removal marker) is held: exit 4 naming both; a marker left by a killed remover is honoured only for minutes', async () => {
    const stale = holder(deadPid())
    await writeFile(lockFile(), stale)
    // What a remover killed between its marker and its removal leaves beside the lock.
    const marker = removalMarker(lockFile(), Buffer.from(stale))
    await writeFile(marker, '')
    const refused = acquireLock(repo, {command: 'br backup'})
    await expect(refused).rejects.toMatchObject({exitCode: 4})
    await expect(refused).rejects.toThrow(
      / is locked by .* whose lock another run is taking over \(pid \d+ no longer runs;/,
    )
    expect(await readFile(lockFile(), 'utf8')).toBe(stale)
    const old = new Date(Date.now() - STALE_REMOVAL_MS - 60_000)
    await utimes(marker, old, old)
    const unlock = await acquireLock(repo, {command: 'br backup'})
    expect((await readHolder()).command).toBe('br backup')
    await unlock()
    expect(await readdir(repo.path)).not.toContain(basename(marker))
  })

  it('refuses a dangling symlink where the lock is, as a damaged lock (exit 4), without spinning', async () => {
    await symlink(join(repo.path, 'nowhere'), lockFile())
    await expect(acquireLock(repo, {command: 'br backup'})).rejects.toMatchObject({
      exitCode: 4,
      message: `repository ${repo.path} has a damaged lock lock.json`,
    })
  })

  it('a lock that comes and goes while it waits is not a damaged one: only vanished looks in a row count', async () => {
    // Each attempt to create the lock fails, and the look after it finds the lock gone and then a
    // dead run's lock another remover is busy with, in turn: TAKEOVER_TRIES + 1 vanished looks in
    // all, never two in a row. Then the lock is free.
    const dead = Buffer.from(holder(deadPid()) + '\n')
    const rounds = TAKEOVER_TRIES + 1
    class Churning extends FsBackend {
      looks = 0

      override async createExclusive(key: string, bytes: Uint8Array) {
        return key === LOCK_FILE && this.looks < 2 * rounds ? false : super.createExclusive(key, bytes)
      }

      override async load(key: string, options?: LoadOptions) {
        if (key !== LOCK_FILE || this.looks >= 2 * rounds) return super.load(key, options)
        this.looks++
        if (this.looks % 2 === 1) throw Object.assign(new Error(`${key} is gone`), {code: 'ENOENT'})
        return dead
      }

      override async removeIf(key: string, expected: Uint8Array) {
        return this.looks < 2 * rounds ? false : super.removeIf(key, expected)
      }
    }

    const backend = new Churning(repo.path)
    const release = await acquireLock(new Repository(backend, repo.path), {command: 'br backup', waitSeconds: 60})
    expect(backend.looks).toBe(2 * rounds)
    expect(await readHolder()).toMatchObject({command: 'br backup', pid: process.pid})
    await release()
    expect(await readdir(repo.path)).not.toContain(LOCK_FILE)
  })

  it('refuses a damaged lock file, naming it (exit 4)', async () => {
    await writeFile(lockFile(), '{"half')
    await expect(acquireLock(repo, {command: 'br backup'})).rejects.toMatchObject({
      exitCode: 4,
      message: `repository ${repo.path} has a damaged lock lock.json`,
      suggestions: [expect.stringContaining(`remove ${lockFile()}`)],
    })
  })

  it('unlock leaves a lock that is no longer ours alone', async () => {
    const unlock = await acquireLock(repo, {command: 'br backup'})
    await writeFile(lockFile(), holder(process.pid, {token: 'someone-else'}))
    await unlock()
    expect((await readHolder()).token).toBe('someone-else')
  })
})

describe('the heartbeat of a held lock', () => {
  it('rewrites the lock with a new refreshedAt while held, the same holder otherwise; unlock stops it', async () => {
    const warnings: string[] = []
    const unlock = await acquireLock(repo, {command: 'br backup', onWarning: (m) => warnings.push(m), refreshMs: 100})
    const first = await readHolder()
    expect(first.refreshedAt).toBe(first.startedAt)
    await sleep(450)
    const later = await readHolder()
    expect(Date.parse(later.refreshedAt!)).toBeGreaterThan(Date.parse(first.refreshedAt!) + 200)
    expect({...later, refreshedAt: undefined}).toEqual({...first, refreshedAt: undefined})
    await unlock()
    expect((await readdir(repo.path)).filter((name) => name.startsWith(LOCK_FILE))).toEqual([])
    await sleep(300)
    // Stopped: no beat came back to write it again, or to complain that it is gone.
    expect((await readdir(repo.path)).filter((name) => name.startsWith(LOCK_FILE))).toEqual([])
    expect(warnings).toEqual([])
  })

  it('says when a refresh fails (the lock was taken over), writes nothing over the new holder, and stops', async () => {
    const errors: Error[] = []
    const unlock = await acquireLock(repo, {
      command: 'br backup',
      onRefreshError: (error) => errors.push(error),
      refreshMs: 100,
    })
    await writeFile(lockFile(), holder(process.pid, {command: 'br prune', token: 'someone-else'}))
    await sleep(450)
    expect(errors.map((e) => e.message)).toEqual(['another writer took it over'])
    expect(await readHolder()).toMatchObject({command: 'br prune', token: 'someone-else'})
    await unlock()
    expect((await readHolder()).token).toBe('someone-else')
  })

  it('once taken over, the lock says it is lost and checkHeld refuses with exit 4 naming the repository and what was not done', async () => {
    const unlock = await acquireLock(repo, {command: 'br backup', onRefreshError() {}, refreshMs: 100})
    await unlock.checkHeld('publishing backup b1')
    expect(unlock.lost).toBeUndefined()
    await writeFile(lockFile(), holder(process.pid, {command: 'br prune', token: 'someone-else'}))
    await sleep(250)
    expect(unlock.lost).toBe('another writer took it over')
    await expect(unlock.checkHeld('publishing backup b1')).rejects.toMatchObject({
      code: 'locked',
      exitCode: 4,
      message: `lost the lock of repository ${repo.path} (another writer took it over): stopped before publishing backup b1`,
    })
    await unlock()
    expect((await readHolder()).token).toBe('someone-else')
  })

  it('checkHeld looks at the lock itself: a takeover between two beats is found at once', async () => {
    const unlock = await acquireLock(repo, {command: 'br prune'})
    await rm(lockFile())
    await expect(unlock.checkHeld('deleting backup b1')).rejects.toMatchObject({
      exitCode: 4,
      message: `lost the lock of repository ${repo.path} (lock.json was removed while this run held it): stopped before deleting backup b1`,
    })
    expect(unlock.lost).toBe('lock.json was removed while this run held it')
    await unlock()
  })

  it('by default, a failed refresh is a warning naming the repository', async () => {
    const warnings: string[] = []
    const unlock = await acquireLock(repo, {command: 'br backup', onWarning: (m) => warnings.push(m), refreshMs: 100})
    await rm(lockFile())
    await sleep(250)
    await unlock()
    expect(warnings[0]).toBe(
      `could not refresh the lock of repository ${repo.path}: lock.json was removed while this run held it (another writer may take it over once it is 30 min old)`,
    )
  })

  it('a lock of another host is respected while refreshed, and taken over once its refresh is older than the limit', async () => {
    const old = new Date(Date.now() - 10 * 3_600_000).toISOString()
    await writeFile(
      lockFile(),
      holder(1, {host: 'elsewhere', refreshedAt: new Date(Date.now() - 60_000).toISOString(), startedAt: old}),
    )
    await expect(acquireLock(repo, {command: 'br backup'})).rejects.toMatchObject({
      exitCode: 4,
      message: expect.stringContaining('locked by br backup (pid 1 on host elsewhere'),
    })
    const warnings: string[] = []
    const unlock = await acquireLock(repo, {
      command: 'br prune',
      onWarning: (m) => warnings.push(m),
      staleAfterMs: 30_000,
    })
    expect(warnings).toEqual([
      expect.stringMatching(
        /^took over a stale lock of br backup \(pid 1 on host elsewhere .*\): a lock from another host not refreshed for over 30.0s is presumed dead$/,
      ),
    ])
    expect(await readHolder()).toMatchObject({command: 'br prune', host: hostname(), pid: process.pid})
    await unlock()
  })
})

describe('staleReason', () => {
  const now = Date.now()
  const at = (msAgo: number) => new Date(now - msAgo).toISOString()

  it('presumes a lock from another host dead once it went 30 minutes without a refresh, however old it is', () => {
    const other = {command: 'x', host: 'elsewhere', pid: process.pid, token: 't'}
    // Started ten hours ago, refreshed a minute ago: a long backup that is alive.
    expect(staleReason({...other, refreshedAt: at(60_000), startedAt: at(10 * 3_600_000)}, now)).toBeNull()
    expect(staleReason({...other, refreshedAt: at(29 * 60_000), startedAt: at(10 * 3_600_000)}, now)).toBeNull()
    expect(staleReason({...other, refreshedAt: at(31 * 60_000), startedAt: at(40 * 60_000)}, now)).toBe(
      'a lock from another host not refreshed for over 30 min is presumed dead',
    )
    // An older version's lock has no refreshedAt: its start counts.
    expect(staleReason({...other, startedAt: at(29 * 60_000)}, now)).toBeNull()
    expect(staleReason({...other, startedAt: at(31 * 60_000)}, now)).toBe(
      'a lock from another host not refreshed for over 30 min is presumed dead',
    )
    expect(staleReason({...other, startedAt: at(2000)}, now, 1000)).toBe(
      'a lock from another host not refreshed for over 1.0s is presumed dead',
    )
  })

  it('on this host: a live process older than its lock is not stale; a gone pid is', () => {
    const here = {command: 'x', host: hostname(), token: 't'}
    expect(staleReason({...here, pid: process.pid, startedAt: at(0)}, now)).toBeNull()
    const dead = deadPid()
    expect(staleReason({...here, pid: dead, startedAt: at(0)}, now)).toBe(`pid ${dead} no longer runs`)
  })

  it('on this host: a pid that names no one process (0, -1, a fraction, NaN) is gone, not a signal to a group', () => {
    const here = {command: 'x', host: hostname(), startedAt: at(0), token: 't'}
    // kill(0, 0) and kill(-1, 0) succeed: signal 0 alone would call these holders alive forever.
    expect(() => process.kill(0, 0)).not.toThrow()
    for (const pid of [0, -1, -process.pid, 1.5, Number.NaN]) {
      expect(pidAlive(pid), String(pid)).toBe(false)
      expect(staleReason({...here, pid}, now)).toBe(`pid ${pid} no longer runs`)
    }
  })

  it.runIf(process.platform === 'linux')(
    'on this host: a killed holder its parent has not reaped yet (a zombie) is gone',
    async () => {
      // sh starts `sleep 60`, prints its pid, and becomes `sleep 100`, which never reaps it.
      const parent = spawn('sh', ['-c', 'sleep 60 & echo $!; exec sleep 100'], {stdio: ['ignore', 'pipe', 'ignore']})
      try {
        const pid = Number((await once(parent.stdout!, 'data'))[0].toString())
        // Until sh has become `sleep 100` it would reap its child itself.
        for (let i = 0; i < 100 && (await readFile(`/proc/${parent.pid}/comm`, 'utf8')) !== 'sleep\n'; i++)
          await sleep(10)
        const here = {command: 'x', host: hostname(), pid, startedAt: at(0), token: 't'}
        expect(staleReason(here, Date.now())).toBeNull()
        process.kill(pid, 'SIGKILL')
        for (let i = 0; i < 50 && !(await readFile(`/proc/${pid}/stat`, 'utf8')).includes(') Z'); i++) await sleep(20)
        // Signal 0 still reaches it: only its state says it is gone.
        expect(() => process.kill(pid, 0)).not.toThrow()
        expect(staleReason(here, Date.now())).toBe(`pid ${pid} no longer runs`)
      } finally {
        parent.kill('SIGKILL')
      }
    },
  )

  it.runIf(process.platform === 'linux')('on this host: a pid now used by a younger process is stale', () => {
    // This process started after "the lock was taken" a day ago: its pid was reused.
    const lock = {command: 'x', host: hostname(), pid: process.pid, startedAt: at(86_400_000), token: 't'}
    expect(staleReason(lock, now)).toBe(`pid ${process.pid} is now another process`)
  })
})
