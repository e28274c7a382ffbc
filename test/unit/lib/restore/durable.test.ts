/**
 * durable.ts: the staged tree flushed by one `sync -f` where coreutils has it (Linux, as here), and
 * by an fsync of every file and directory where `sync` cannot be run (a PATH without it); an abort
 * stops it with the abort's reason. TreeWriteBack's background flushes, through a `sync` on PATH
 * that logs its calls and then runs the real one (or fails, or hangs).
 */
import {chmod, mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

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
    const path = process.env.PATH
    process.env.PATH = join(dir, 'no-such-bin')
    try {
      expect(await syncTree(dir)).toBe('fsync')
    } finally {
      process.env.PATH = path
    }

    expect(await readFile(join(dir, 'a', 'b', 'file'), 'utf8')).toBe('bytes')
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

/** Runs `body` with a `sync` first on PATH that logs each call's arguments, then does `then`. */
async function withSync(then: string, body: (calls: () => Promise<string[]>) => Promise<void>): Promise<void> {
  const bin = await mkdtemp(join(tmpdir(), 'durable-bin-'))
  const log = join(bin, 'calls')
  await writeFile(log, '')
  await writeFile(join(bin, 'sync'), `#!/bin/sh\necho "$*" >> '${log}'\n${then}\n`)
  await chmod(join(bin, 'sync'), 0o755)
  const path = process.env.PATH
  process.env.PATH = `${bin}:${path}`
  try {
    await body(async () => (await readFile(log, 'utf8')).split('\n').filter(Boolean))
  } finally {
    process.env.PATH = path
    await rm(bin, {force: true, recursive: true})
  }
}

describe('TreeWriteBack', () => {
  it('flushes in the background past each mark, one flush at a time, and waits for the last', async () => {
    await withSync('sleep 0.3; exec /bin/sync "$@"', async (calls) => {
      const writeBack = new TreeWriteBack(dir, 100)
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
      expect(writeBack.failed).toBe(false)
    })
  })

  it('a flush that fails stops them, and sends the last flush file by file', async () => {
    await withSync('exit 1', async (calls) => {
      const writeBack = new TreeWriteBack(dir, 100)
      writeBack.written(100)
      await writeBack.settle()
      expect(writeBack.failed).toBe(true)
      writeBack.written(1000)
      await writeBack.settle()
      expect(await calls()).toHaveLength(1)
      expect(await syncTree(dir, undefined, {perFile: writeBack.failed})).toBe('fsync')
      // The fallback did not run sync again.
      expect(await calls()).toHaveLength(1)
    })
  })

  it('a restore that fails kills the flush it started, not waiting for the disk', async () => {
    await withSync('exec sleep 30', async (calls) => {
      const writeBack = new TreeWriteBack(dir, 100)
      writeBack.written(100)
      // The child has started once it has logged its call.
      await expect.poll(calls, {timeout: 5000}).toHaveLength(1)
      const started = Date.now()
      await writeBack.settle(true)
      expect(Date.now() - started).toBeLessThan(5000)
    })
  })
})
