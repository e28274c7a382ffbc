/**
 * restoreFlow in process, on real files: the golden repositories (test/fixtures/golden, copied to
 * a temp dir), a real target data dir holding "previous" data, and a recording fake of
 * ServiceControl, the one seam faked, which fails or aborts at the call a test names. Every branch
 * of the rollback is run: a failure before the stop, after the stop and before the swap, after the
 * swap and before the start, after the start; an undo that fails itself; Ctrl-C (an aborted
 * signal) at each phase. Each case checks the data dir's tree, what is left beside it, the lock,
 * and the calls the service got with what the data dir held at each one.
 *
 * Then verifyFlow and readChain on a good chain of three and on damaged ones.
 */
import {execFileSync} from 'node:child_process'
import {cp, mkdir, readdir, readFile, unlink, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'

import type {DecryptOptions} from '../../../../src/lib/archive/types.js'

import {BrError, ExitCode, serviceError} from '../../../../src/lib/errors.js'
import {localRepo} from '../../../../src/lib/repo/address.js'
import {readChain} from '../../../../src/lib/restore/chain.js'
import {newRestoreContext, type RestoreContext, restoreFlow} from '../../../../src/lib/restore/restore.js'
import {newVerifyContext, verifyFlow} from '../../../../src/lib/restore/verify.js'
import {type FlowEvent, runFlow} from '../../../../src/lib/steps.js'
import {ROOT, tempDir} from '../../../helpers/cli.js'
import {RecordingService, type ServiceCall} from '../../../helpers/recording-service.js'
import {treeHashes} from '../../../helpers/tree.js'

interface Expected {
  corrupt: Record<string, {id: string; repo: string}>
  goldens: Record<string, {id: string; repo: string; version: string}>
  versions: Record<string, {hashes: Record<string, string>}>
}

const GOLDEN = join(ROOT, 'test', 'fixtures', 'golden')
const expected = JSON.parse(await readFile(join(GOLDEN, 'expected.json'), 'utf8')) as Expected
const FULL = expected.goldens.full
const NO_TRUST = {allowUnencrypted: false, allowUnsigned: false, signers: []}
const SWAP = 'Swap in the restored directory'

let tmp: Awaited<ReturnType<typeof tempDir>>
let golden: string
let decrypt: DecryptOptions
let cases = 0
/** treeHashes of the data dir as it was before each restore, and of the backup restored */
let trees: Record<string, Record<string, string>>

beforeAll(async () => {
  tmp = await tempDir('moctl-br-restore-flow-')
  golden = join(tmp.path, 'golden')
  await cp(GOLDEN, golden, {recursive: true})
  const identity = (await readFile(join(golden, 'keys', 'test-only-identity.key'), 'utf8'))
    .split('\n')
    .find((l) => l.startsWith('AGE-SECRET-KEY-1'))!
  decrypt = {identities: [identity], passphrases: []}
  const sample = join(tmp.path, 'sample')
  await writePrevious(sample)
  trees = {backup: expected.versions[FULL.version].hashes, previous: await treeHashes(sample)}
})

afterAll(async () => {
  await tmp?.cleanup()
})

/** What the target held before the restore: a few files that must never be lost. */
async function writePrevious(dir: string): Promise<void> {
  await mkdir(join(dir, 'shared'), {recursive: true})
  await writeFile(join(dir, 'PREVIOUS'), 'the data that was there\n')
  await writeFile(join(dir, 'shared', 'object-1'), 'an object of the previous data\n')
}

interface Case {
  dataDir: string
  lockFile: string
  parent: string
  service: RecordingService
}

/** A new parent dir holding mo-data with the previous data, and a fake service watching it. */
async function newCase(): Promise<Case> {
  const parent = join(tmp.path, `case-${++cases}`)
  const dataDir = join(parent, 'mo-data')
  await writePrevious(dataDir)
  return {
    dataDir,
    lockFile: join(parent, '.mo-data.moctl-br.lock'),
    parent,
    service: new RecordingService(dataDir, trees),
  }
}

async function restore(
  c: Case,
  options: {onEvent?: (e: FlowEvent) => void; repo?: string; signal?: AbortSignal; writeBackBytes?: number} = {},
): Promise<{ctx: RestoreContext; error?: BrError}> {
  const ctx = newRestoreContext({
    dataDir: c.dataDir,
    decrypt,
    discardOld: false,
    force: true,
    id: FULL.id,
    repo: localRepo(join(golden, options.repo ?? FULL.repo)),
    service: c.service,
    trust: NO_TRUST,
    writeBackBytes: options.writeBackBytes,
  })
  try {
    await runFlow(restoreFlow(), ctx, {onEvent: options.onEvent, signal: options.signal})
    return {ctx}
  } catch (error) {
    expect(error).toBeInstanceOf(BrError)
    return {ctx, error: error as BrError}
  }
}

/** The previous data is in place, nothing of the run is left beside it, and the lock is released. */
async function expectRolledBack(c: Case): Promise<void> {
  expect(await treeHashes(c.dataDir)).toEqual(trees.previous)
  expect(await readdir(c.parent)).toEqual(['mo-data'])
}

const lockState = async (c: Case) => JSON.parse(await readFile(c.lockFile, 'utf8'))
const stagingOf = async (c: Case) => (await readdir(c.parent)).find((n) => n.startsWith('.mo-data.restore-'))

/**
 * A restore with a background flush at every progress tick, through a `sync` first on PATH that
 * logs its calls and does `then` (a shell line; $REAL_SYNC is the real one); the flush step's line
 * and the calls.
 */
async function flushed(then: string): Promise<{calls: string[]; line?: string}> {
  const bin = join(tmp.path, `bin-${++cases}`)
  await mkdir(bin)
  await writeFile(join(bin, 'sync'), `#!/bin/sh\necho "$*" >> '${bin}/calls'\n${then}\n`, {mode: 0o755})
  vi.stubEnv('REAL_SYNC', execFileSync('sh', ['-c', 'command -v sync'], {encoding: 'utf8'}).trim())
  vi.stubEnv('PATH', `${bin}:${process.env.PATH}`)
  const c = await newCase()
  const lines: FlowEvent[] = []
  const {error} = await restore(c, {onEvent: (e) => lines.push(e), writeBackBytes: 1})
  expect(error).toBeUndefined()
  expect(await treeHashes(c.dataDir)).toEqual(trees.backup)
  const line = lines.find((e) => e.type === 'output' && e.step === 'Flush the staged tree to disk')
  return {
    calls: (await readFile(join(bin, 'calls'), 'utf8')).split('\n').filter(Boolean),
    line: line?.type === 'output' ? line.line : undefined,
  }
}

describe('restoreFlow', () => {
  it('succeeds: stops on the previous data, starts on the restored data, keeps the previous beside it', async () => {
    const c = await newCase()
    const {ctx, error} = await restore(c)
    expect(error).toBeUndefined()
    expect(c.service.summary).toEqual(['stop@previous', 'start@backup', 'waitReady@backup', 'listDatabases@backup'])
    expect(await treeHashes(c.dataDir)).toEqual(trees.backup)
    expect(ctx.oldDir).toBe(`${c.dataDir}.before-${FULL.id}`)
    expect(await treeHashes(ctx.oldDir!)).toEqual(trees.previous)
    expect((await readdir(c.parent)).sort()).toEqual(['mo-data', `mo-data.before-${FULL.id}`])
  })

  describe('flushes the staged tree while it is written (a `sync` on PATH that logs its calls)', () => {
    it('flushes in the background, then once more before the stop', async () => {
      const {calls, line} = await flushed('exec "$REAL_SYNC" "$@"')
      expect(calls.length).toBeGreaterThanOrEqual(2)
      for (const call of calls) expect(call).toMatch(/^-f .*\/\.mo-data\.restore-/)
      expect(line).toBe('one syncfs of its filesystem (sync -f)')
    })

    it('after a background flush that failed, the last flush goes file by file (the failed one may have taken the error report)', async () => {
      const {calls, line} = await flushed(`echo "sync: error syncing '$2': Input/output error" >&2; exit 1`)
      expect(calls).toHaveLength(1)
      expect(line).toMatch(
        /^an fsync of every file and directory \(a flush while extracting failed: sync: error syncing '.*\.mo-data\.restore-[^']+': Input\/output error\)$/,
      )
    })
  })

  describe('rolls back', () => {
    it('a failure before the stop (a damaged archive): nothing stopped, nothing moved', async () => {
      const c = await newCase()
      const {error} = await restore(c, {repo: expected.corrupt['flipped-archive'].repo})
      expect(error?.exitCode).toBe(ExitCode.integrity)
      expect(error?.message).toMatch(/archive does not match the SHA-256 in its record/)
      expect(c.service.summary).toEqual([])
      await expectRolledBack(c)
    })

    it('a stop that fails: nothing moved, and a service that did not stop is not started', async () => {
      const c = await newCase()
      c.service.hook = (call) => {
        if (call === 'stop') throw serviceError('the fake service would not stop')
      }

      const {error} = await restore(c)
      expect(error?.exitCode).toBe(ExitCode.service)
      expect(error?.message).toBe('the fake service would not stop')
      expect(c.service.summary).toEqual(['stop@previous'])
      await expectRolledBack(c)
    })

    it('a failure after the stop, before the swap: started again on the previous data, staging removed', async () => {
      const c = await newCase()
      c.service.hook = async (call) => {
        // Something writes into the staged tree while the service stops: the swap must refuse it.
        if (call === 'stop') await writeFile(join(c.parent, (await stagingOf(c))!, 'intruder'), 'x')
      }

      const {error} = await restore(c)
      expect(error?.exitCode).toBe(ExitCode.integrity)
      expect(error?.message).toMatch(/^the staged tree \S+ is not the one verified .*: refusing to swap it in$/)
      expect(c.service.summary).toEqual(['stop@previous', 'start@previous', 'waitReady@previous'])
      await expectRolledBack(c)
    })

    it('a data dir lock taken over by another run before the swap: exit 4, nothing swapped, started again on the previous data, its lock left alone', async () => {
      const c = await newCase()
      // What a run on another host writes once it finds ours unrefreshed for 30 minutes.
      const theirs = JSON.stringify({
        command: 'br restore',
        dataDir: c.dataDir,
        host: 'elsewhere',
        pid: 1,
        scratch: [],
        startedAt: new Date().toISOString(),
        token: 'theirs',
      })
      c.service.hook = async (call) => {
        if (call === 'stop') await writeFile(c.lockFile, theirs)
      }

      const {error} = await restore(c)
      expect(error).toMatchObject({
        code: 'locked',
        exitCode: 4,
        message: `lost the lock of data directory ${c.dataDir} (another writer took it over): this run stops here`,
      })
      expect(c.service.summary).toEqual(['stop@previous', 'start@previous', 'waitReady@previous'])
      expect(await treeHashes(c.dataDir)).toEqual(trees.previous)
      expect(await readFile(c.lockFile, 'utf8')).toBe(theirs)
      expect((await readdir(c.parent)).sort()).toEqual(['.mo-data.moctl-br.lock', 'mo-data'])
    })

    it('a start that fails after the swap: the previous data put back and started', async () => {
      const c = await newCase()
      c.service.hook = (call, n) => {
        if (call === 'start' && n === 1) throw serviceError('the fake service would not start')
      }

      const {error} = await restore(c)
      expect(error?.exitCode).toBe(ExitCode.service)
      expect(error?.message).toBe('the fake service would not start')
      // The start may have got half-way: it is stopped again before the data is moved.
      expect(c.service.summary).toEqual([
        'stop@previous',
        'start@backup',
        'stop@backup',
        'start@previous',
        'waitReady@previous',
      ])
      await expectRolledBack(c)
    })

    for (const failing of ['waitReady', 'listDatabases'] as const) {
      it(`a failure after the start (${failing}): stopped, previous data put back, started on it`, async () => {
        const c = await newCase()
        c.service.hook = (call, n) => {
          if (call === failing && n === 1) throw serviceError(`the fake ${failing} failed`)
        }

        const {error} = await restore(c)
        expect(error?.message).toBe(`the fake ${failing} failed`)
        expect(c.service.summary).toEqual([
          'stop@previous',
          'start@backup',
          'waitReady@backup',
          ...(failing === 'listDatabases' ? ['listDatabases@backup'] : []),
          'stop@backup',
          'start@previous',
          'waitReady@previous',
        ])
        await expectRolledBack(c)
      })
    }
  })

  describe('an undo that fails itself: rollback incomplete, the lock kept, the message says where the data is', () => {
    it('the service does not start again on the previous data', async () => {
      const c = await newCase()
      c.service.hook = (call, n) => {
        if (call === 'waitReady' && n === 1) throw serviceError('the fake service never answered')
        if (call === 'start' && n === 2) throw serviceError('the fake service would not start')
      }

      const {error} = await restore(c)
      expect(error?.exitCode).toBe(ExitCode.service)
      expect(error?.message).toBe(
        `rollback incomplete: starting the service again on the previous data: the fake service would not start (the previous data is in ${c.dataDir})`,
      )
      expect(error?.suggestions.join('\n')).toMatch(/the previous data was not deleted/)
      expect(c.service.summary).toEqual([
        'stop@previous',
        'start@backup',
        'waitReady@backup',
        'stop@backup',
        'start@previous',
      ])
      expect(await treeHashes(c.dataDir)).toEqual(trees.previous)
      // The lock stays, saying the service is stopped and how to start it: the next run repeats it.
      expect(await lockState(c)).toMatchObject({service: {describe: 'recording fake'}})
      expect((await readdir(c.parent)).sort()).toEqual(['.mo-data.moctl-br.lock', 'mo-data'])
    })

    it('the previous data cannot be put back: both directories kept, and named', async () => {
      const c = await newCase()
      c.service.hook = async (call, n) => {
        if (call === 'waitReady' && n === 1) throw serviceError('the fake service never answered')
        if (call === 'stop' && n === 2) {
          // Where the restored data must go back to is taken: the put-back's first rename fails.
          const {swap} = await lockState(c)
          await mkdir(join(swap.staging, 'squatter'), {recursive: true})
        }
      }

      const {ctx, error} = await restore(c)
      const oldDir = `${c.dataDir}.before-${FULL.id}`
      expect(error?.exitCode).toBe(ExitCode.service)
      expect(error?.message).toMatch(
        new RegExp(
          `^rollback incomplete: putting the previous data back in ${c.dataDir}: .*\\(the restored data is in ${c.dataDir}, the previous data in ${oldDir}\\)$`,
        ),
      )
      expect(ctx.state.swapped).toBe(true)
      // Not started on data that is not the previous: the operator decides.
      expect(c.service.summary).toEqual(['stop@previous', 'start@backup', 'waitReady@backup', 'stop@backup'])
      expect(await treeHashes(c.dataDir)).toEqual(trees.backup)
      expect(await treeHashes(oldDir)).toEqual(trees.previous)
      expect(await lockState(c)).toMatchObject({swap: {phase: 'swapped', previous: oldDir}})
    })
  })

  describe('Ctrl-C (the signal aborted) at each phase: rolled back, exit 130', () => {
    /** where to abort: a service call (the call then fails as an interrupted one does, or returns) or a step's end */
    const phases: Array<{
      at: {call: ServiceCall; fails: boolean} | {progress: string} | {stepEnd: string} | {stepStart: string}
      calls: string[]
      name: string
    }> = [
      {at: {stepStart: 'Extract and verify'}, calls: [], name: 'before extracting'},
      // The first file's first bytes report progress: the abort lands mid-archive, staging half written.
      {at: {progress: 'Extract and verify'}, calls: [], name: 'while extracting'},
      // The lib does not start a service whose stop was cut short: src/service.ts's stop does, if it went down.
      {at: {call: 'stop', fails: true}, calls: ['stop@previous'], name: 'during the stop'},
      {
        at: {call: 'stop', fails: false},
        calls: ['stop@previous', 'start@previous', 'waitReady@previous'],
        name: 'after the stop, before the swap',
      },
      {
        at: {stepEnd: SWAP},
        calls: ['stop@previous', 'start@previous', 'waitReady@previous'],
        name: 'after the swap, before the start',
      },
      {
        at: {call: 'start', fails: true},
        calls: ['stop@previous', 'start@backup', 'stop@backup', 'start@previous', 'waitReady@previous'],
        name: 'during the start',
      },
      {
        at: {call: 'waitReady', fails: true},
        calls: [
          'stop@previous',
          'start@backup',
          'waitReady@backup',
          'stop@backup',
          'start@previous',
          'waitReady@previous',
        ],
        name: 'while waiting for SQL',
      },
    ]
    for (const phase of phases) {
      it(phase.name, async () => {
        const c = await newCase()
        const controller = new AbortController()
        const {at} = phase
        if ('call' in at) {
          c.service.hook = (call, n, signal) => {
            if (call !== at.call || n !== 1) return
            controller.abort()
            if (at.fails) signal.throwIfAborted()
          }
        }

        let progressed = false
        const onEvent = (e: FlowEvent) => {
          if ('stepStart' in at && e.type === 'start' && e.step === at.stepStart) controller.abort()
          if ('stepEnd' in at && e.type === 'end' && e.step === at.stepEnd) controller.abort()
          if ('progress' in at && e.type === 'progress' && e.step === at.progress) {
            progressed = true
            controller.abort()
          }
        }

        const {error} = await restore(c, {onEvent, signal: controller.signal})
        expect(error?.exitCode).toBe(ExitCode.interrupted)
        expect(progressed).toBe('progress' in at)
        expect(error?.message).toBe('interrupted; what was done so far was rolled back')
        expect(c.service.summary).toEqual(phase.calls)
        // Every call after the abort is the rollback's: none gets the aborted signal, or it would be cut short.
        expect(c.service.calls.filter((call) => call.aborted)).toEqual([])
        await expectRolledBack(c)
      })
    }
  })
})

async function verified(repoPath: string, id: string) {
  const ctx = newVerifyContext({decrypt, id, quick: false, repo: localRepo(repoPath), trust: NO_TRUST})
  await runFlow(verifyFlow(), ctx)
  return ctx
}

async function copyChain(name: string): Promise<string> {
  const repo = join(tmp.path, name)
  await cp(join(golden, 'chain'), repo, {recursive: true})
  return repo
}

async function flipByte(file: string): Promise<void> {
  const buf = await readFile(file)
  buf[buf.length - 40] ^= 0x01
  await writeFile(file, buf)
}

describe('verifyFlow and readChain on a chain of three', () => {
  const [full, inc1, inc2] = ['chain-full', 'chain-incremental-1', 'chain-incremental-2'].map(
    (n) => expected.goldens[n],
  )

  it('verifies the newest, and readChain writes its whole file set byte for byte', async () => {
    const repo = await copyChain('chain-good')
    const ctx = await verified(repo, inc2.id)
    const want = expected.versions[inc2.version].hashes
    const files = Object.values(want).filter((h) => h !== 'dir' && !h.startsWith('-> ')).length
    expect(ctx.files).toBe(files)
    expect(ctx.members!.map((m) => m.id)).toEqual([full.id, inc1.id, inc2.id])

    const dest = join(tmp.path, 'chain-good-restored')
    await mkdir(dest)
    const read = await readChain({
      dest,
      finalManifest: ctx.manifest!,
      keys: decrypt,
      members: ctx.members!,
      repo: ctx.repo!,
    })
    expect(read.files).toBe(files)
    expect(await treeHashes(dest)).toEqual(want)
  })

  it('a damaged member archive: verify and readChain fail naming that member', async () => {
    const repo = await copyChain('chain-damaged')
    const ctx = await verified(repo, inc2.id)
    await flipByte(join(repo, 'backups', inc1.id, 'data.tar.zst.age'))

    await expect(verified(repo, inc2.id)).rejects.toThrow(
      new RegExp(`^backup ${inc1.id}: archive does not match the SHA-256 in its record$`),
    )
    const dest = join(tmp.path, 'chain-damaged-restored')
    await mkdir(dest)
    const reading = readChain({
      dest,
      finalManifest: ctx.manifest!,
      keys: decrypt,
      members: ctx.members!,
      repo: ctx.repo!,
    })
    await expect(reading).rejects.toMatchObject({code: 'integrity', message: expect.stringContaining(inc1.id)})
  })

  it('a missing member: refused before any archive is read, naming it', async () => {
    const repo = await copyChain('chain-missing')
    await unlink(join(repo, 'backups', inc1.id, 'backup.json'))
    await expect(verified(repo, inc2.id)).rejects.toMatchObject({
      code: 'integrity',
      message: `backup ${inc1.id}, which ${inc2.id} is built on, is missing or incomplete`,
    })
  })
})
