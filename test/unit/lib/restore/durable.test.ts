/**
 * durable.ts: the staged tree flushed by one `sync -f` where coreutils has it (Linux, as here), and
 * by an fsync of every file and directory where `sync` cannot be run (a PATH without it); an abort
 * stops it with the abort's reason.
 */
import {mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {syncTree} from '../../../../src/lib/restore/durable.js'

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
