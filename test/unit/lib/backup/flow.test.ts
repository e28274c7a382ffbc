/**
 * backupFlow in process, on real temp dirs and a real repository, with a recording fake of the
 * ServiceControl seam (the only fake: stop/start/waitReady are what the command fills from hooks
 * and SQL). Each failure branch is made real where it can be: a FIFO that MO "leaves" when it
 * stops fails the scan, a directory where an object must go fails that repository write.
 */
import {execFile} from 'node:child_process'
import {writeFileSync} from 'node:fs'
import {mkdir, readdir, readFile, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {promisify} from 'node:util'
import {afterEach, beforeEach, describe, expect, it, vi} from 'vitest'

import {compressorName} from '../../../../src/lib/archive/compress.js'
import {liveWorkers} from '../../../../src/lib/archive/zstd-pool.js'
import {backupFlow, type BackupOptions, sourceFor} from '../../../../src/lib/backup/backup.js'
import {readDataDirLock, resolveDataDir} from '../../../../src/lib/datadir-lock.js'
import {BrError} from '../../../../src/lib/errors.js'
import {localRepo} from '../../../../src/lib/repo/address.js'
import {FsBackend} from '../../../../src/lib/repo/fs.js'
import {LOCK_FILE} from '../../../../src/lib/repo/lock.js'
import {openRepository} from '../../../../src/lib/repo/repository.js'
import {type ServiceControl} from '../../../../src/lib/service/control.js'
import {ROLL_BACK, runFlow} from '../../../../src/lib/steps.js'
import {optionsFor} from '../../../helpers/backup.js'
import {tempDir} from '../../../helpers/cli.js'
import {makeSmallDataDir} from '../../../helpers/fixtures.js'
import {treeHashes} from '../../../helpers/tree.js'
import {startFakeMo} from '../mo/fake-mo.js'
import {FULL_TS, writeBackupFolder} from '../mo/fixture.js'

const execFileP = promisify(execFile)

type Call = 'start' | 'stop' | 'waitReady'

/** A ServiceControl that records its calls, fails at the one it is told to, and can act on stop. */
function fakeService(options: {fail?: Call; onStop?: () => Promise<unknown>} = {}): ServiceControl & {calls: Call[]} {
  const calls: Call[] = []
  const call = async (name: Call) => {
    calls.push(name)
    if (options.fail === name) throw new BrError('service', `${name} failed`)
  }

  return {
    calls,
    describe: 'fake: mo',
    listDatabases: async () => [],
    async start() {
      await call('start')
    },
    startHint: 'fake start',
    async stop() {
      await call('stop')
      await options.onStop?.()
    },
    async waitReady() {
      await call('waitReady')
      return {elapsedMs: 1, version: 'fake'}
    },
  }
}

let tmp: {cleanup: () => Promise<void>; path: string}
let dataDir: string
let repoPath: string

beforeEach(async () => {
  tmp = await tempDir()
  dataDir = join(tmp.path, 'mo-data')
  repoPath = join(tmp.path, 'repo')
  await makeSmallDataDir(dataDir)
})

afterEach(async () => {
  // A spy left by a test that timed out would reach every later file of this worker (isolate: false).
  vi.restoreAllMocks()
  await tmp.cleanup()
})

const optionsWith = (over: Partial<BackupOptions> = {}): BackupOptions => optionsFor(dataDir, repoPath, over)

/** Runs a backup; `abortAt`: abort as that step is about to start. */
async function backup(options: BackupOptions, run: {abortAt?: string; source?: ReturnType<typeof sourceFor>} = {}) {
  const flow = backupFlow(options, run.source)
  const controller = new AbortController()
  const steps: string[] = []
  const failed: string[] = []
  const output: string[] = []
  const error = await runFlow(flow.flow, flow.ctx, {
    onEvent(event) {
      if (event.type === 'start' && event.step !== ROLL_BACK) steps.push(event.step)
      if (event.type === 'fail') failed.push(event.step)
      if (event.type === 'output') output.push(`${event.step}: ${event.line}`)
      if (event.type === 'start' && event.step === run.abortAt) controller.abort()
    },
    signal: controller.signal,
  }).then(
    () => null,
    (error_: unknown) => error_ as BrError,
  )
  return {error, failed, id: flow.ctx.state.id, output, result: error ? undefined : flow.result(), steps}
}

/** What a failed run must leave: no backup (listed or not), no lock, nothing beside the data dir. */
async function expectNothingLeft(): Promise<void> {
  const repo = await openRepository(repoPath, {create: true})
  expect((await repo.scanBackups()).records).toEqual([])
  expect(await readdir(join(repoPath, 'backups')).catch(() => [])).toEqual([])
  expect(await readdir(repoPath)).not.toContain(LOCK_FILE)
  expect(await readDataDirLock(await resolveDataDir(dataDir))).toBeUndefined()
  expect((await readdir(tmp.path)).sort()).toEqual(['mo-data', 'repo'])
  // No zstd worker thread left running (the abort tests run at parallelism 2).
  await vi.waitFor(() => expect(liveWorkers()).toBe(0))
}

const COLD_STEPS = [
  'Check paths and service',
  'Open repository',
  'Lock the data directory',
  'Check data directory',
  'Stop service',
  'Scan data directory',
  'Pack, compress and encrypt',
  'Start service',
  'Publish',
]

describe('backupFlow: cold', () => {
  it('stops, packs, starts, publishes a complete record, and releases both locks', async () => {
    const service = fakeService()
    const before = await treeHashes(dataDir)
    const run = await backup(optionsWith({service}))
    expect(run.error).toBeNull()
    expect(run.steps).toEqual(COLD_STEPS)
    expect(service.calls).toEqual(['stop', 'start', 'waitReady'])
    const repo = await openRepository(repoPath)
    const [record] = (await repo.scanBackups()).records
    expect(run.result).toMatchObject({clone: null, id: run.id, mode: 'cold', type: 'full'})
    expect(run.result!.serviceDownMs).toBeGreaterThanOrEqual(0)
    // What was published is the record the run returned, with every field filled.
    // The record, and what the run adds: the clone, the downtime and how zstd ran.
    expect(run.result!.compressor).toBe(compressorName(undefined, 1))
    expect({...run.result, clone: undefined, compressor: undefined, serviceDownMs: undefined}).toEqual({
      ...record,
      clone: undefined,
      compressor: undefined,
      serviceDownMs: undefined,
    })
    expect(record.completedAt).not.toBe('')
    expect(record.manifest.size).toBeGreaterThan(0)
    expect(record.excluded).toEqual(['shared-cache', 'tmp'])
    expect(record.sizes.archived).toBe(record.sizes.total)
    // backup.json's keys in the order it has always had (archives and records stay byte-compatible).
    const json = await readFile(join(repoPath, 'backups', run.id, 'backup.json'), 'utf8')
    expect(Object.keys(JSON.parse(json))).toEqual([
      'archive',
      'backupTs',
      'base',
      'chain',
      'completedAt',
      'counts',
      'createdAt',
      'durationMs',
      'encryption',
      'excluded',
      'format',
      'id',
      'manifest',
      'mode',
      'signature',
      'sizes',
      'source',
      'tool',
      'type',
    ])
    expect(await treeHashes(dataDir)).toEqual(before)
    expect(await readdir(repoPath)).not.toContain(LOCK_FILE)
    expect(await readDataDirLock(await resolveDataDir(dataDir))).toBeUndefined()
  })

  it('without a managed service shows no stop or start step', async () => {
    const run = await backup(optionsWith())
    expect(run.error).toBeNull()
    expect(run.steps).toEqual(COLD_STEPS.filter((s) => s !== 'Stop service' && s !== 'Start service'))
    expect(run.result!.serviceDownMs).toBeNull()
  })

  it('a failure before the stop leaves the service untouched and creates nothing', async () => {
    const service = fakeService()
    const inside = await backup(optionsWith({repo: localRepo(join(dataDir, 'repo')), service}))
    expect(inside.error).toMatchObject({code: 'usage'})
    expect(inside.error!.message).toContain('is inside the data directory')
    expect(service.calls).toEqual([])
    await expect(stat(join(dataDir, 'repo'))).rejects.toMatchObject({code: 'ENOENT'})

    const noBase = await backup(optionsWith({baseId: 'nosuch', service, type: 'incremental'}))
    expect(noBase.error).toMatchObject({code: 'usage'})
    expect(noBase.failed).toEqual(['Find the base backup'])
    expect(service.calls).toEqual([])
    await expectNothingLeft()
  })

  it('a failing stop is not started again; the locks are released', async () => {
    const service = fakeService({fail: 'stop'})
    const run = await backup(optionsWith({service}))
    expect(run.error!.message).toBe('stop failed')
    expect(service.calls).toEqual(['stop'])
    await expectNothingLeft()
  })

  it('a failed scan after the stop starts the service again and releases both locks', async () => {
    // MO leaves a FIFO behind as it stops: the scan refuses it (checkNames ran before, when it was not there).
    const service = fakeService({
      onStop: () => execFileP('mkfifo', [join(dataDir, 'local', 'pipe')]),
    })
    const run = await backup(optionsWith({service}))
    expect(run.error!.message).toContain('is not a file, directory or symlink')
    expect(run.failed).toEqual(['Scan data directory'])
    expect(service.calls).toEqual(['stop', 'start', 'waitReady'])
    await expectNothingLeft()
  })

  // A directory where an object must go fails that write; made while the service is down, after
  // the open step's write probe cleared the backup's prefix.
  for (const [object, step] of [
    ['data.tar.zst', 'Pack, compress and encrypt'],
    ['manifest.json', 'Publish'],
  ] as const) {
    it(`a failed repository write of ${object} removes what was written, starts the service, releases the locks`, async () => {
      let id = ''
      const service = fakeService({onStop: () => mkdir(join(repoPath, 'backups', id, object, 'x'), {recursive: true})})
      const flow = backupFlow(optionsWith({service}))
      id = flow.ctx.state.id
      const steps: string[] = []
      const error = await runFlow(flow.flow, flow.ctx, {
        onEvent: (e) => e.type === 'fail' && steps.push(e.step),
      }).catch((error_: unknown) => error_)
      expect(error).toBeInstanceOf(Error)
      expect(steps).toEqual([step])
      expect(service.calls).toEqual(['stop', 'start', 'waitReady'])
      await expectNothingLeft()
    })
  }

  it('a start that fails keeps the data dir lock and its record of the stop; the repository is cleaned and unlocked', async () => {
    const service = fakeService({fail: 'start'})
    const run = await backup(optionsWith({service}))
    expect(run.error).toMatchObject({code: 'service', message: 'start failed'})
    // Once in the step, once more in the rollback.
    expect(service.calls).toEqual(['stop', 'start', 'start'])
    const lock = await readDataDirLock(await resolveDataDir(dataDir))
    expect(lock?.state?.service).toEqual({describe: 'fake: mo', start: 'fake start'})
    const repo = await openRepository(repoPath)
    expect((await repo.scanBackups()).records).toEqual([])
    expect(await readdir(join(repoPath, 'backups'))).toEqual([])
    expect(await readdir(repoPath)).not.toContain(LOCK_FILE)
  })

  it('a repository lock taken over by another writer before the publish: exit 4 naming the repository, nothing published, the new holder left alone', async () => {
    const service = fakeService()
    const other = JSON.stringify({
      command: 'br prune',
      host: 'elsewhere',
      pid: 1,
      refreshedAt: new Date().toISOString(),
      startedAt: new Date().toISOString(),
      token: 'theirs',
    })
    const flow = backupFlow(optionsWith({service}))
    const error = await runFlow(flow.flow, flow.ctx, {
      onEvent(event) {
        // As another writer would after finding ours stale: its lock in the place of ours.
        if (event.type === 'start' && event.step === 'Publish') writeFileSync(join(repoPath, LOCK_FILE), other)
      },
    }).catch((error_: unknown) => error_)
    expect(error).toMatchObject({
      code: 'locked',
      exitCode: 4,
      message: `lost the lock of repository ${repoPath} (another writer took it over): stopped before publishing backup ${flow.ctx.state.id}`,
    })
    expect(service.calls).toEqual(['stop', 'start', 'waitReady'])
    const repo = await openRepository(repoPath)
    expect((await repo.scanBackups()).records).toEqual([])
    expect(await readdir(join(repoPath, 'backups'))).toEqual([])
    expect(await readFile(join(repoPath, LOCK_FILE), 'utf8')).toBe(other)
    expect(await readDataDirLock(await resolveDataDir(dataDir))).toBeUndefined()
  })

  it('a published backup stays published when releasing a lock fails after it', async () => {
    const flow = backupFlow(optionsWith())
    // The disk fails the first removal once Publish starts: the repository lock's, after the record.
    const removeIf = vi.spyOn(FsBackend.prototype, 'removeIf')
    const error = await runFlow(flow.flow, flow.ctx, {
      onEvent(event) {
        if (event.type === 'start' && event.step === 'Publish') {
          removeIf.mockRejectedValueOnce(Object.assign(new Error('EIO: i/o error, unlink'), {code: 'EIO'}))
        }
      },
    })
      .catch((error_: unknown) => error_)
      .finally(() => removeIf.mockRestore())
    expect((error as NodeJS.ErrnoException).code).toBe('EIO')
    const repo = await openRepository(repoPath)
    expect((await repo.scanBackups()).records.map((r) => r.id)).toEqual([flow.ctx.state.id])
    expect(await repo.readObject(flow.ctx.state.id, 'backup.json')).toBeInstanceOf(Buffer)
    // The data dir's lock was released all the same.
    expect(await readDataDirLock(await resolveDataDir(dataDir))).toBeUndefined()
  })

  it('a service that starts but is not ready in time: its record is cleared, the locks released', async () => {
    const service = fakeService({fail: 'waitReady'})
    const run = await backup(optionsWith({service}))
    expect(run.error!.message).toBe('waitReady failed')
    // Started once: the rollback does not start it again.
    expect(service.calls).toEqual(['stop', 'start', 'waitReady'])
    await expectNothingLeft()
  })

  for (const step of COLD_STEPS) {
    it(`an abort as "${step}" starts rolls back what was done`, async () => {
      const service = fakeService()
      const run = await backup(optionsWith({parallelism: 2, service}), {abortAt: step})
      expect(run.error).toMatchObject({code: 'interrupted'})
      const stopped = COLD_STEPS.indexOf(step) > COLD_STEPS.indexOf('Stop service')
      // Started again (by the rollback, or by its step before the abort) once it was stopped.
      expect(service.calls).toEqual(stopped ? ['stop', 'start', 'waitReady'] : [])
      await expectNothingLeft()
    })
  }
})

describe('backupFlow: clone', () => {
  const CLONE_STEPS = [
    'Check paths and service',
    'Open repository',
    'Lock the data directory',
    'Check data directory',
    'Check room for the clone',
    'Stop service',
    'Scan data directory',
    'Clone the files to pack',
    'Start service',
    'Pack, compress and encrypt',
    'Publish',
  ]

  it('starts the service before the pack, packs from the clone, and removes it', async () => {
    const service = fakeService()
    const run = await backup(optionsWith({clone: true, service}))
    expect(run.error).toBeNull()
    expect(run.steps).toEqual(CLONE_STEPS)
    expect(service.calls).toEqual(['stop', 'start', 'waitReady'])
    expect(run.result!.clone).toMatchObject({files: 18, reflink: expect.any(Boolean)})
    expect((await readdir(tmp.path)).sort()).toEqual(['mo-data', 'repo'])
    expect(run.output.some((l) => l.startsWith('Clone the files to pack: 18 files'))).toBe(true)
  })

  for (const step of CLONE_STEPS.slice(CLONE_STEPS.indexOf('Clone the files to pack'))) {
    it(`an abort as "${step}" starts removes the clone and releases the locks`, async () => {
      const service = fakeService()
      const run = await backup(optionsWith({clone: true, service}), {abortAt: step})
      expect(run.error).toMatchObject({code: 'interrupted'})
      expect(service.calls).toEqual(['stop', 'start', 'waitReady'])
      await expectNothingLeft()
    })
  }

  it('a failed pack removes the clone (the service already runs again)', async () => {
    let id = ''
    const service = fakeService({
      onStop: () => mkdir(join(repoPath, 'backups', id, 'data.tar.zst', 'x'), {recursive: true}),
    })
    const flow = backupFlow(optionsWith({clone: true, service}))
    id = flow.ctx.state.id
    await expect(runFlow(flow.flow, flow.ctx)).rejects.toBeInstanceOf(Error)
    expect(service.calls).toEqual(['stop', 'start', 'waitReady'])
    await expectNothingLeft()
  })
})

describe('backupFlow: incremental', () => {
  it('plans against the newest backup of this data dir and packs only what changed', async () => {
    const full = await backup(optionsWith())
    expect(full.error).toBeNull()
    await makeSmallDataDir(join(tmp.path, 'other'), {seed: 2})
    // One changed object, one new.
    await execFileP('cp', ['-p', join(tmp.path, 'other', 'local', 'hk_data'), join(dataDir, 'local', 'hk_data')])
    await execFileP('cp', ['-p', join(tmp.path, 'other', 'local', 'hk_data'), join(dataDir, 'local', 'new')])
    await execFileP('rm', ['-r', join(tmp.path, 'other'), join(dataDir, 'etl')])
    const inc = await backup(optionsWith({type: 'incremental'}))
    expect(inc.error).toBeNull()
    expect(inc.steps).toContain('Find the base backup')
    expect(inc.steps).toContain('Plan the incremental')
    expect(inc.result).toMatchObject({base: full.id, chain: [full.id, inc.id], type: 'incremental'})
    expect(inc.result!.sizes.archived).toBe(2 * 'hakeeper 2\n'.length)
    expect(inc.output.filter((l) => l.startsWith('Plan the incremental'))).toEqual([
      expect.stringMatching(/^Plan the incremental: 2 new or changed files \(.+\), 16 unchanged, \d+ deleted$/),
    ])
  })

  it('refuses a cold incremental on an online base before anything stops', async () => {
    const full = await backup(optionsWith())
    // Rewrite the base's record as if it were online: the mode check reads the record.
    const file = join(repoPath, 'backups', full.id, 'backup.json')
    const record = JSON.parse(await readFile(file, 'utf8')) as {mode: string}
    record.mode = 'online'
    await writeFile(file, JSON.stringify(record))
    const service = fakeService()
    const run = await backup(optionsWith({service, type: 'incremental'}))
    expect(run.error).toMatchObject({code: 'usage'})
    expect(run.error!.message).toContain('cold incrementals need cold bases')
    expect(service.calls).toEqual([])
  })
})

describe('backupFlow: online', () => {
  it("runs MO's BACKUP, packs its folder, removes it, and never stops anything", async () => {
    const mo = await startFakeMo(async (statement, connection) => {
      const target = /FILESYSTEM '([^']+)'/.exec(statement)?.[1] ?? ''
      await writeBackupFolder(target)
      connection.writeOk()
    })
    try {
      const service = fakeService()
      const sql = {deadlineMs: 0, host: '127.0.0.1', password: '', port: mo.port, user: 'root'}
      const run = await backup(optionsWith({mode: 'online', service, sql}))
      expect(run.error).toBeNull()
      expect(run.steps).toEqual([
        'Check paths and service',
        'Open repository',
        'Check data directory',
        "Run MO's BACKUP",
        "Check MO's checksums",
        'Scan data directory',
        'Pack, compress and encrypt',
        'Publish',
      ])
      expect(service.calls).toEqual([])
      expect(run.result).toMatchObject({backupTs: FULL_TS, excluded: [], mode: 'online', serviceDownMs: null})
      expect((await readdir(tmp.path)).sort()).toEqual(['mo-data', 'repo'])
    } finally {
      await mo.close()
    }
  })

  for (const step of ["Check MO's checksums", 'Scan data directory', 'Pack, compress and encrypt', 'Publish']) {
    it(`an abort as "${step}" starts removes MO's folder and what was written`, async () => {
      const mo = await startFakeMo(async (statement, connection) => {
        await writeBackupFolder(/FILESYSTEM '([^']+)'/.exec(statement)?.[1] ?? '')
        connection.writeOk()
      })
      try {
        const sql = {deadlineMs: 0, host: '127.0.0.1', password: '', port: mo.port, user: 'root'}
        const run = await backup(optionsWith({mode: 'online', sql}), {abortAt: step})
        expect(run.error).toMatchObject({code: 'interrupted'})
        await expectNothingLeft()
      } finally {
        await mo.close()
      }
    })
  }

  it("a failed BACKUP removes MO's folder and the run's objects", async () => {
    const mo = await startFakeMo(async (statement, connection) => {
      const target = /FILESYSTEM '([^']+)'/.exec(statement)?.[1] ?? ''
      // MO wrote part of its folder, then failed.
      await writeBackupFolder(target)
      connection.writeError({code: 20_101, message: 'internal error'})
    })
    try {
      const sql = {deadlineMs: 0, host: '127.0.0.1', password: '', port: mo.port, user: 'root'}
      const run = await backup(optionsWith({mode: 'online', sql}))
      expect(run.error).toMatchObject({code: 'service'})
      expect(run.failed).toEqual(["Run MO's BACKUP"])
      await expectNothingLeft()
    } finally {
      await mo.close()
    }
  })
})
