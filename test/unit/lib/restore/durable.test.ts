/**
 * durable.ts: the staged tree flushed by one `sync -f` where coreutils has it (Linux, as here), and
 * by an fsync of every file and directory where `sync` cannot be run (a PATH without it); an abort
 * stops it with the abort's reason; on another OS (whose `sync -f` is no syncfs) it goes file by
 * file. TreeWriteBack's background flushes, through a `sync` on PATH that logs its calls and then
 * runs the real one (or fails, or hangs).
 */
import {execFileSync} from 'node:child_process'
import {chmod, mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it, onTestFinished, vi} from 'vitest'

import {syncTree, TreeWriteBack} from '../../../../src/lib/restore/durable.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'durable-'))
  await mkdir(join(dir, 'a', 'b'), {recursive: true})
  await writeFile(join(dir, 'a', 'b', 'file'), 'bytes')
  await writeFile(join(dir, 'top'), 'more')
})
afterAll(async () => {
  await rm(dir, {force: true, recursive: true})
})

describe('syncTree', () => {
  it('is one syncfs through sync -f on Linux', async () => {
    expect(await syncTree(dir)).toBe('syncfs')
  })

  it('falls back to an fsync of every file and directory when sync cannot be run', async () => {
    vi.stubEnv('PATH', join(dir, 'no-such-bin'))
    expect(await syncTree(dir)).toBe('fsync')
    expect(await readFile(join(dir, 'a', 'b', 'file'), 'utf8')).toBe('bytes')
  })

  it('goes file by file on another OS, whose sync ignores -f and does not wait, and runs no sync there', async () => {
    await withSync('exec "$REAL_SYNC" "$@"', async (calls) => {
      onPlatform('darwin')
      expect(await syncTree(dir)).toBe('fsync')
      const writeBack = new TreeWriteBack(dir, {every: 1})
      writeBack.written(100)
      await writeBack.settle()
      expect(await calls()).toEqual([])
    })
  })

  it('a missing tree is an error, not a silent success', async () => {
    await expect(syncTree(join(dir, 'missing'))).rejects.toMatchObject({code: 'ENOENT'})
  })

  it('stops on abort with its reason', async () => {
    const controller = new AbortController()
    controller.abort(new Error('stop here'))
    await expect(syncTree(dir, controller.signal)).rejects.toThrow('stop here')
  })
})

/** The real `sync`, found before any test puts its own first on PATH. */
const REAL_SYNC = execFileSync('sh', ['-c', 'command -v sync'], {encoding: 'utf8'}).trim()

/** process.platform reads `platform` until the test ends. */
function onPlatform(platform: NodeJS.Platform): void {
  const real = Object.getOwnPropertyDescriptor(process, 'platform')!
  Object.defineProperty(process, 'platform', {...real, value: platform})
  onTestFinished(() => {
    Object.defineProperty(process, 'platform', real)
  })
}

/**
 * Runs `body` with a `sync` first on PATH that logs each call's arguments, then does `then`
 * (a shell line; $REAL_SYNC is the real one).
 */
async function withSync(then: string, body: (calls: () => Promise<string[]>) => Promise<void>): Promise<void> {
  const bin = await mkdtemp(join(tmpdir(), 'durable-bin-'))
  const log = join(bin, 'calls')
  await writeFile(log, '')
  await writeFile(join(bin, 'sync'), `#!/bin/sh\necho "$*" >> '${log}'\n${then}\n`)
  await chmod(join(bin, 'sync'), 0o755)
  vi.stubEnv('PATH', `${bin}:${process.env.PATH}`)
  vi.stubEnv('REAL_SYNC', REAL_SYNC)
  try {
    await body(async () => (await readFile(log, 'utf8')).split('\n').filter(Boolean))
  } finally {
    await rm(bin, {force: true, recursive: true})
  }
}

describe('TreeWriteBack', () => {
  it('flushes in the background past each mark, one flush at a time, and waits for the last', async () => {
    await withSync('sleep 0.3; exec "$REAL_SYNC" "$@"', async (calls) => {
      const writeBack = new TreeWriteBack(dir, {every: 100})
      writeBack.written(99)
      await writeBack.settle()
      expect(await calls()).toEqual([])
      writeBack.written(100)
      // Running: the marks passed meanwhile start nothing.
      writeBack.written(250)
      writeBack.written(400)
      await writeBack.settle()
      expect(await calls()).toEqual([`-f ${dir}`])
      // The next mark counts from where the last flush started (100), not from the last call.
      writeBack.written(199)
      await writeBack.settle()
      expect(await calls()).toHaveLength(1)
      writeBack.written(200)
      await writeBack.settle()
      expect(await calls()).toEqual([`-f ${dir}`, `-f ${dir}`])
      expect(writeBack.failure).toBeUndefined()
    })
  })

  it("a flush that fails stops them, keeps sync's words, and sends the last flush file by file", async () => {
    await withSync('echo "sync: error syncing \'$2\': Input/output error" >&2; exit 1', async (calls) => {
      const writeBack = new TreeWriteBack(dir, {every: 100})
      writeBack.written(100)
      await writeBack.settle()
      expect(writeBack.failure).toBe(`sync: error syncing '${dir}': Input/output error`)
      writeBack.written(1000)
      await writeBack.settle()
      expect(await calls()).toHaveLength(1)
      expect(await syncTree(dir, undefined, {perFile: writeBack.failure !== undefined})).toBe('fsync')
      // The fallback did not run sync again.
      expect(await calls()).toHaveLength(1)
    })
  })

  it("Ctrl-C (the step's signal) kills the flush it started", async () => {
    await withSync('exec sleep 30', async (calls) => {
      const controller = new AbortController()
      const writeBack = new TreeWriteBack(dir, {every: 100, signal: controller.signal})
      writeBack.written(100)
      await expect.poll(calls, {timeout: 5000}).toHaveLength(1)
      const started = Date.now()
      controller.abort()
      await writeBack.settle()
      expect(Date.now() - started).toBeLessThan(5000)
    })
  })

  it('a restore that fails kills the flush it started (one not yet inside syncfs dies at once)', async () => {
    await withSync('exec sleep 30', async (calls) => {
      const writeBack = new TreeWriteBack(dir, {every: 100})
      writeBack.written(100)
      // The child has started once it has logged its call.
      await expect.poll(calls, {timeout: 5000}).toHaveLength(1)
      const started = Date.now()
      await writeBack.settle(true)
      expect(Date.now() - started).toBeLessThan(5000)
    })
  })
})
