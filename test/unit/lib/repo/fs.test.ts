/**
 * The local-directory backend's two conditional operations, on real files: createExclusive
 * (create only if absent) and removeIf (remove only what we expect to be there).
 */
import {execFile} from 'node:child_process'
import {lstat, mkdir, readdir, readFile, stat, truncate, utimes, writeFile} from 'node:fs/promises'
import {createServer} from 'node:net'
import {basename, join} from 'node:path'
import {promisify} from 'node:util'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {STALE_REMOVAL_MS} from '../../../../src/lib/repo/backend.js'
import {FsBackend, removalMarker, takeoverMarker} from '../../../../src/lib/repo/fs.js'
import {tempDir} from '../../../helpers/cli.js'

let tmp: {cleanup: () => Promise<void>; path: string}
let backend: FsBackend
beforeEach(async () => {
  tmp = await tempDir()
  backend = new FsBackend(tmp.path)
})
afterEach(async () => tmp.cleanup())
const lock = () => join(tmp.path, 'lock.json')
/** A removal marker for 'stale' at lock.json, dated past STALE_REMOVAL_MS, and the takeover marker its takers race for. */
const deadMarker = async () => {
  const marker = removalMarker(lock(), Buffer.from('stale'))
  await writeFile(marker, '')
  const old = new Date(Date.now() - STALE_REMOVAL_MS - 60_000)
  await utimes(marker, old, old)
  const left = await lstat(marker)
  return {marker, takeover: takeoverMarker(marker, {ino: left.ino, mtimeMs: left.mtimeMs})}
}

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

  // A remover killed holding its marker leaves it; its takers must never both act on the lock.
  describe('a removal marker left by a killed remover', () => {
    it('is taken over by one remover, which removes the object and leaves nothing behind', async () => {
      await writeFile(lock(), 'stale')
      await deadMarker()
      const results = await Promise.all(
        Array.from({length: 16}, () => backend.removeIf('lock.json', Buffer.from('stale'))),
      )
      expect(results.filter(Boolean)).toHaveLength(1)
      expect(await readdir(tmp.path)).toEqual([])
    })

    it('is left alone while another remover holds its takeover: nothing is removed, nothing moves', async () => {
      await writeFile(lock(), 'stale')
      const {marker, takeover} = await deadMarker()
      await writeFile(takeover, '')
      expect(await backend.removeIf('lock.json', Buffer.from('stale'))).toBe(false)
      expect((await readdir(tmp.path)).sort()).toEqual(['lock.json', basename(marker), basename(takeover)].sort())
    })
  })

  it('is false, not an error, for a key whose folder does not exist', async () => {
    expect(await backend.removeIf('no/such/folder/lock.json', Buffer.from('x'))).toBe(false)
  })
})

/**
 * Special files where the repository expects a regular file: made with the real mkfifo(1), a real
 * listening Unix socket, a directory, and a sparse 1 GiB file. Every read must fail at once (the
 * test timeout proves no read waits for a FIFO's writer) and never read the 1 GiB into memory.
 */
describe('FsBackend reads only regular files of a bounded size', () => {
  it('refuses a FIFO through readBuffer and createReadStream without waiting for a writer', async () => {
    await mkfifo(join(tmp.path, 'lock.json'))
    await expect(backend.load('lock.json')).rejects.toThrow('repository object lock.json is a FIFO, not a regular file')
    const stream = backend.open('lock.json')
    await expect(text(stream)).rejects.toThrow('is a FIFO, not a regular file')
    // removeIf never reads what it cannot compare: the FIFO is put back, not removed or hung on.
    expect(await backend.removeIf('lock.json', Buffer.from('x'))).toBe(false)
    expect((await lstat(join(tmp.path, 'lock.json'))).isFIFO()).toBe(true)
  }, 5000)

  it('refuses a socket and a directory', async () => {
    const server = createServer()
    await new Promise<void>((resolve) => {
      server.listen(join(tmp.path, 'sock'), resolve)
    })
    try {
      await expect(backend.load('sock')).rejects.toThrow('repository object sock is a socket or device')
      await expect(text(backend.open('sock'))).rejects.toThrow('is a socket or device')
    } finally {
      server.close()
    }

    await mkdir(join(tmp.path, 'backup.json'))
    await expect(backend.load('backup.json')).rejects.toThrow('is a directory, not a regular file')
    await expect(text(backend.open('backup.json'))).rejects.toThrow('is a directory')
  }, 5000)

  it('refuses a 1 GiB object over its bound before reading it: memory does not grow', async () => {
    const path = join(tmp.path, 'manifest.age')
    await writeFile(path, '')
    await truncate(path, 1024 ** 3)
    const before = process.resourceUsage().maxRSS
    await expect(backend.load('manifest.age', {maxBytes: 4096})).rejects.toMatchObject({
      exitCode: 3,
      message: expect.stringContaining('is 1.0 GiB, more than the 4.0 KiB it may be: refused unread'),
    })
    // maxRSS is the peak in KiB: reading the object would have raised it by 1 GiB.
    expect(process.resourceUsage().maxRSS - before).toBeLessThan(64 * 1024)
  })

  it('reads a regular file within its bound, and the default bound is 1 MiB', async () => {
    await writeFile(join(tmp.path, 'a.json'), 'x'.repeat(100))
    expect((await backend.load('a.json')).toString()).toBe('x'.repeat(100))
    await writeFile(join(tmp.path, 'big.json'), Buffer.alloc(1024 * 1024 + 1))
    await expect(backend.load('big.json')).rejects.toThrow('more than the')
    expect(await backend.load('big.json', {maxBytes: 2 * 1024 * 1024})).toHaveLength(1024 * 1024 + 1)
  })
})

const mkfifo = (path: string) => promisify(execFile)('mkfifo', [path])

async function text(stream: NodeJS.ReadableStream): Promise<string> {
  let out = ''
  for await (const chunk of stream) out += chunk
  return out
}
