/**
 * The local-directory backend's two conditional operations, on real files: createExclusive
 * (create only if absent) and removeIf (remove only what we expect to be there).
 */
import {readdir, readFile, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {FsBackend} from '../../../../src/lib/repo/fs.js'
import {tempDir} from '../../../helpers/cli.js'

let tmp: {cleanup: () => Promise<void>; path: string}
let backend: FsBackend
beforeEach(async () => {
  tmp = await tempDir()
  backend = new FsBackend(tmp.path)
})
afterEach(async () => tmp.cleanup())

describe('FsBackend.createExclusive', () => {
  it('creates the whole object once, mode 0600, and refuses a second create without touching the first', async () => {
    expect(await backend.createExclusive('a/lock.json', Buffer.from('first'))).toBe(true)
    expect(await backend.createExclusive('a/lock.json', Buffer.from('second'))).toBe(false)
    expect(await readFile(join(tmp.path, 'a', 'lock.json'), 'utf8')).toBe('first')
    expect((await stat(join(tmp.path, 'a', 'lock.json'))).mode & 0o777).toBe(0o600)
    expect(await readdir(join(tmp.path, 'a'))).toEqual(['lock.json'])
  })

  it('lets exactly one of many concurrent creators win', async () => {
    const results = await Promise.all(
      Array.from({length: 16}, (_, i) => backend.createExclusive('lock.json', Buffer.from(`creator ${i}`))),
    )
    expect(results.filter(Boolean)).toHaveLength(1)
    expect(await readFile(join(tmp.path, 'lock.json'), 'utf8')).toBe(`creator ${results.indexOf(true)}`)
    expect(await readdir(tmp.path)).toEqual(['lock.json'])
  })
})

describe('FsBackend.removeIf', () => {
  it('removes the object only while it holds the expected bytes', async () => {
    await writeFile(join(tmp.path, 'lock.json'), 'theirs')
    expect(await backend.removeIf('lock.json', Buffer.from('mine'))).toBe(false)
    expect(await readFile(join(tmp.path, 'lock.json'), 'utf8')).toBe('theirs')
    expect(await backend.removeIf('lock.json', Buffer.from('theirs'))).toBe(true)
    expect(await readdir(tmp.path)).toEqual([])
    expect(await backend.removeIf('lock.json', Buffer.from('theirs'))).toBe(false)
  })

  it('lets exactly one of many concurrent removers of the same object win', async () => {
    await writeFile(join(tmp.path, 'lock.json'), 'stale')
    const results = await Promise.all(
      Array.from({length: 16}, () => backend.removeIf('lock.json', Buffer.from('stale'))),
    )
    expect(results.filter(Boolean)).toHaveLength(1)
    expect(await readdir(tmp.path)).toEqual([])
  })
})
