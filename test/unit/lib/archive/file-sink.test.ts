/**
 * The file sink (file-sink.ts): files hashed and written on a worker thread, in batches. Small
 * batches here, so that a few small files already go through the worker and across batch
 * boundaries: the bytes and SHA-256 of every file, holes, hash-only files, many empty files (a
 * batch sent for its operations alone), exclusive creation (an existing file or a symlink at the
 * name is an error, and the target of the link is untouched), a file written from parts (at an
 * offset, into the file a newer part made: never through a symlink), a full disk, and an abandoned sink:
 * each failure leaves no worker running and no file descriptor open.
 */
import {createHash} from 'node:crypto'
import {
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {type Worker} from 'node:worker_threads'
import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'

import {type FileDigest, FileSink, liveSinkWorkers} from '../../../../src/lib/archive/file-sink.js'
import {skipNote} from '../../../helpers/needs.js'
import {canMount, NOT_ROOT, tmpfsMounts} from '../../../helpers/tmpfs.js'

const BATCH = 64 * 1024
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')
const openFds = () => readdirSync('/proc/self/fd').length
/** What this process's fds are open on. */
const openPaths = () =>
  readdirSync('/proc/self/fd').flatMap((fd) => {
    try {
      return [readlinkSync(`/proc/self/fd/${fd}`)]
    } catch {
      return [] // the fd readdir itself used, closed since
    }
  })

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'file-sink-'))
})
afterAll(async () => {
  await rm(dir, {force: true, recursive: true})
})

/** Bytes that are not zero (no hole), different at every offset. */
function bytesOf(size: number, seed: number): Buffer {
  const bytes = Buffer.alloc(size)
  for (let i = 0; i < size; i++) bytes[i] = ((i * 31 + seed) % 251) + 1
  return bytes
}

/** Gives `content` to the sink in chunks of `chunk` bytes, as tar would, waiting when told to. */
async function feed(sink: FileSink, path: string | undefined, content: Buffer, chunk = 10_000): Promise<FileDigest> {
  const digest = {sha256: ''}
  sink.start(path, digest)
  for (let at = 0; at < content.length; at += chunk) {
    const wait = sink.write(content.subarray(at, at + chunk))

    if (wait) await wait
  }

  await sink.end()
  return digest
}

describe('file sink', () => {
  it('writes and hashes files across batch boundaries on a worker, holes left as holes', async () => {
    const out = join(dir, 'plain')
    await rm(out, {force: true, recursive: true})
    const {mkdir} = await import('node:fs/promises')
    await mkdir(out)
    const zeros = Buffer.alloc(4 * 64 * 1024)
    const files = [
      ['empty', Buffer.alloc(0)],
      ['small', bytesOf(100, 1)],
      ['odd', bytesOf(3 * BATCH + 12_345, 2)],
      // 64 KiB of data, 256 KiB of zeros, a tail: the zeros are not written
      ['sparse', Buffer.concat([bytesOf(64 * 1024, 3), zeros, bytesOf(999, 4)])],
      ['ends-in-zeros', Buffer.concat([bytesOf(70_000, 5), zeros])],
    ] as const
    const fds = openFds()
    const sink = new FileSink({batchBytes: BATCH})
    const digests = []

    for (const [name, content] of files) digests.push(await feed(sink, join(out, name), content))
    await sink.finish()

    expect(liveSinkWorkers()).toBe(0)
    expect(openFds()).toBe(fds)
    for (const [i, [name, content]] of files.entries()) {
      expect(digests[i].sha256, name).toBe(sha256(content))
      expect(readFileSync(join(out, name)).equals(content), name).toBe(true)
      expect(statSync(join(out, name)).mode & 0o777, name).toBe(0o600)
    }

    // 4 blocks of zeros skipped: fewer 512-byte blocks allocated than the size needs.
    const sparse = statSync(join(out, 'sparse'))
    expect(sparse.blocks * 512).toBeLessThan(sparse.size - zeros.length / 2)
  })

  it('hashes without writing, and a batch of many empty files goes for its operations alone', async () => {
    const sink = new FileSink({batchBytes: BATCH})
    const content = bytesOf(5 * BATCH + 7, 9)
    const big = await feed(sink, undefined, content)
    const empties = []

    for (let i = 0; i < 10_000; i++) empties.push(await feed(sink, undefined, Buffer.alloc(0)))
    const last = await feed(sink, undefined, bytesOf(10, 1))
    await sink.finish()
    expect(big.sha256).toBe(sha256(content))
    expect(new Set(empties.map((d) => d.sha256))).toEqual(new Set([sha256(Buffer.alloc(0))]))
    expect(last.sha256).toBe(sha256(bytesOf(10, 1)))
    expect(liveSinkWorkers()).toBe(0)
  })

  it('a small archive is done on the calling thread, no worker started', async () => {
    const sink = new FileSink()
    const started = liveSinkWorkers()
    const digest = await feed(sink, join(dir, 'inline'), bytesOf(5000, 3))
    expect(liveSinkWorkers()).toBe(started)
    await sink.finish()
    expect(digest.sha256).toBe(sha256(bytesOf(5000, 3)))
    expect(readFileSync(join(dir, 'inline')).equals(bytesOf(5000, 3))).toBe(true)
  })

  it.each([
    ['a file', 'exists', () => writeFileSync(join(dir, 'exists'), 'kept')],
    ['a symlink', 'link', () => symlinkSync(join(dir, 'link-target'), join(dir, 'link'))],
  ])('refuses to write over %s (EEXIST, named), the worker gone, no fd left', async (_, name, make) => {
    writeFileSync(join(dir, 'link-target'), 'untouched')
    make()
    const fds = openFds()
    const sink = new FileSink({batchBytes: BATCH})
    await feed(sink, join(dir, `before-${name}`), bytesOf(2 * BATCH, 1))
    const failing = (async () => {
      await feed(sink, join(dir, name), bytesOf(4 * BATCH, 2))
      await sink.finish()
    })()
    await expect(failing).rejects.toMatchObject({code: 'EEXIST', path: join(dir, name), syscall: 'open'})
    await sink.close()
    expect(liveSinkWorkers()).toBe(0)
    expect(openFds()).toBe(fds)
    expect(readFileSync(join(dir, 'link-target'), 'utf8')).toBe('untouched')
    expect(lstatSync(join(dir, `before-${name}`)).size).toBe(2 * BATCH)
  })

  it('writes a file from parts: the newest at its offset in a new file, the older ones into it, holes kept', async () => {
    const {mkdir} = await import('node:fs/promises')
    const out = join(dir, 'parts')
    await rm(out, {force: true, recursive: true})
    await mkdir(out)
    const zeros = Buffer.alloc(3 * 64 * 1024)
    // Offsets not on a 64 KiB boundary, zero runs across the batches and at the ends of parts.
    const parts = [
      Buffer.concat([bytesOf(37_856, 1), zeros]),
      Buffer.concat([zeros, bytesOf(2 * BATCH + 5, 2), zeros.subarray(0, 70_000)]),
      Buffer.concat([bytesOf(1000, 3), zeros, bytesOf(12_345, 4)]),
    ]
    const whole = Buffer.concat(parts)
    const offsets = [0, parts[0].length, parts[0].length + parts[1].length]
    const fds = openFds()
    const sink = new FileSink({batchBytes: BATCH})
    const digests = []
    // As restore reads a chain: the newest archive's part creates the file, then the older ones.
    for (const i of [2, 1, 0]) {
      const digest = {sha256: ''}
      sink.start(join(out, 'wal'), digest, {into: i !== 2, offset: offsets[i]})
      for (let at = 0; at < parts[i].length; at += 10_000) {
        const wait = sink.write(parts[i].subarray(at, at + 10_000))
        if (wait) await wait
      }

      await sink.end()
      digests[i] = digest
    }

    await sink.finish()
    expect(liveSinkWorkers()).toBe(0)
    expect(openFds()).toBe(fds)
    for (const [i, part] of parts.entries()) expect(digests[i].sha256, `part ${i}`).toBe(sha256(part))
    expect(readFileSync(join(out, 'wal')).equals(whole)).toBe(true)
    const info = statSync(join(out, 'wal'))
    expect(info.mode & 0o777).toBe(0o600)
    // Most of the zero runs stayed holes.
    expect(info.blocks * 512).toBeLessThan(info.size - zeros.length)
  })

  it.each([
    ['a symlink', 'ELOOP', (path: string) => symlinkSync(join(dir, 'link-target'), path)],
    ['a directory', 'EISDIR', (path: string) => mkdirSync(path)],
    ['nothing', 'ENOENT', () => {}],
  ])('writes a part into %s: refused (%s), the link target untouched', async (_, code, make) => {
    writeFileSync(join(dir, 'link-target'), 'untouched')
    const path = join(dir, `into-${code}`)
    make(path)
    const fds = openFds()
    const sink = new FileSink({batchBytes: BATCH})
    const digest = {sha256: ''}
    const failing = (async () => {
      sink.start(path, digest, {into: true, offset: 10})
      for (let i = 0; i < 4; i++) {
        const wait = sink.write(bytesOf(BATCH, i))
        if (wait) await wait
      }

      await sink.end()
      await sink.finish()
    })()
    await expect(failing).rejects.toMatchObject({code, path})
    await sink.close()
    expect(liveSinkWorkers()).toBe(0)
    expect(openFds()).toBe(fds)
    expect(readFileSync(join(dir, 'link-target'), 'utf8')).toBe('untouched')
  })

  it('abandoned in the middle of a file: the worker closes it and exits', async () => {
    const fds = openFds()
    const sink = new FileSink({batchBytes: BATCH})
    const digest = {sha256: ''}
    sink.start(join(dir, 'abandoned'), digest)
    for (let i = 0; i < 20; i++) {
      const wait = sink.write(bytesOf(BATCH / 2, i))

      if (wait) await wait
    }

    expect(liveSinkWorkers()).toBe(1)
    await sink.close()
    expect(liveSinkWorkers()).toBe(0)
    expect(openFds()).toBe(fds)
    expect(digest.sha256).toBe('')
    expect(() => sink.write(Buffer.alloc(1))).toThrow(/used after close/)
  })

  it('a worker that dies in the middle of a file leaves no fd (Node closes what it opened)', async () => {
    const fds = openFds()
    const path = join(dir, 'orphaned')
    const sink = new FileSink({batchBytes: BATCH})
    sink.start(path, {sha256: ''})
    for (let i = 0; i < 6; i++) {
      const wait = sink.write(bytesOf(BATCH / 2, i))
      if (wait) await wait
    }

    // Open in the worker, between batches, when it is killed (as out of memory would): the worker's
    // raw fds are closed when it exits (trackUnmanagedFds), so nothing needs to close it after.
    await vi.waitFor(() => expect(openPaths()).toContain(path))
    await (sink as unknown as {worker: Worker}).worker.terminate()
    await vi.waitFor(() => expect(liveSinkWorkers()).toBe(0))
    expect(openPaths()).not.toContain(path)
    expect(openFds()).toBe(fds)
    expect(() => sink.write(Buffer.alloc(1))).toThrow(/a file worker exited \(code 1\) before the end/)
    await sink.close()
  })
})

const root = canMount()
describe('file sink on a full disk', () => {
  const mounts = tmpfsMounts()
  afterAll(() => mounts.unmountAll())

  it.skipIf(!root)(`fails with ENOSPC from write, no worker nor fd left${skipNote(root, NOT_ROOT)}`, async () => {
    const fs = await mounts.mount(join(dir, 'full'), '256k')
    const fds = openFds()
    const sink = new FileSink({batchBytes: BATCH})
    const failing = (async () => {
      await feed(sink, join(fs, 'big'), bytesOf(1024 * 1024, 1))
      await sink.finish()
    })()
    await expect(failing).rejects.toMatchObject({code: 'ENOSPC', syscall: 'write'})
    await sink.close()
    expect(liveSinkWorkers()).toBe(0)
    expect(openFds()).toBe(fds)
  })
})
