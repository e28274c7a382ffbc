/**
 * The write-back stream on real files: what it writes, when it syncs in the background, and how a
 * failed sync or a short write fails it. The file handle is a real one, wrapped to count, time or
 * fail its calls; the streamed save of the local-directory backend goes through it.
 */
import {createHash, randomBytes} from 'node:crypto'
import {open, readdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {FsBackend} from '../../../../src/lib/repo/fs.js'
import {WRITE_BACK_BYTES, type WriteBackFile, writeBackStream} from '../../../../src/lib/repo/write-back.js'
import {tempDir} from '../../../helpers/cli.js'

const MiB = 1024 * 1024
let tmp: {cleanup: () => Promise<void>; path: string}
beforeEach(async () => {
  tmp = await tempDir()
})
afterEach(async () => tmp.cleanup())
/** Compared by digest: vitest's deep equality walks a Buffer byte by byte. */
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')

/** Chunks of uneven sizes (1 byte to 700 KiB) that add up to `total` random bytes. */
function chunksOf(total: number): Buffer[] {
  const chunks: Buffer[] = []
  for (let i = 0, left = total; left > 0; i++) {
    const size = Math.min(left, 1 + ((i * 257_131) % (700 * 1024)))
    chunks.push(randomBytes(size))
    left -= size
  }

  return chunks
}

interface Traced {
  /** most syncs running at once */
  mostAtOnce: number
  running: number
  /** bytes written when each background sync started */
  startedAt: number[]
  written: number
}

/** A real file handle whose calls are counted; `fail` replaces one of them. */
async function traced(path: string, fail: Partial<WriteBackFile> = {}) {
  const handle = await open(path, 'wx', 0o600)
  const trace: Traced = {mostAtOnce: 0, running: 0, startedAt: [], written: 0}
  const file: WriteBackFile = {
    async datasync() {
      trace.startedAt.push(trace.written)
      trace.running++
      trace.mostAtOnce = Math.max(trace.mostAtOnce, trace.running)
      try {
        await (fail.datasync ?? (() => handle.datasync()))()
      } finally {
        trace.running--
      }
    },
    async writev(buffers: NodeJS.ArrayBufferView[]) {
      const result = await (fail.writev ?? ((b: NodeJS.ArrayBufferView[]) => handle.writev(b)))(buffers)
      trace.written += result.bytesWritten
      return result
    },
  } as WriteBackFile
  return {file, handle, trace}
}

describe('writeBackStream', () => {
  it('writes every chunk in order and starts a sync at each mark passed while none is running', async () => {
    const path = join(tmp.path, 'archive')
    const chunks = chunksOf(9 * MiB + 12_345)
    const {file, handle, trace} = await traced(path)
    // Each chunk once the last is written and no sync runs: then each write that passes the mark
    // starts one, whatever the disk's speed, at a point the chunk sizes alone decide.
    async function* settled() {
      let yielded = 0
      for (const chunk of chunks) {
        while (trace.running > 0 || trace.written < yielded)
          await new Promise((resolve) => {
            setImmediate(resolve)
          })
        yielded += chunk.length
        yield chunk
      }
    }

    const marks: number[] = []
    for (let i = 0, total = 0, unsynced = 0; i < chunks.length; i++) {
      total += chunks[i].length
      unsynced += chunks[i].length
      if (unsynced >= MiB) {
        marks.push(total)
        unsynced = 0
      }
    }

    try {
      await pipeline(Readable.from(settled()), writeBackStream(file, MiB))
    } finally {
      await handle.close()
    }

    expect(sha256(await readFile(path))).toBe(sha256(Buffer.concat(chunks)))
    expect(marks.length).toBeGreaterThanOrEqual(6)
    expect(trace.startedAt).toEqual(marks)
  })

  it('runs one sync at a time when the writes outrun the disk, and ends after the last one', async () => {
    const path = join(tmp.path, 'archive')
    const chunks = chunksOf(9 * MiB + 12_345)
    const {file, handle, trace} = await traced(path)
    try {
      await pipeline(Readable.from(chunks), writeBackStream(file, MiB))
      expect(trace.running).toBe(0)
    } finally {
      await handle.close()
    }

    expect(sha256(await readFile(path))).toBe(sha256(Buffer.concat(chunks)))
    expect(trace.startedAt.length).toBeGreaterThanOrEqual(1)
    expect(trace.mostAtOnce).toBe(1)
  })

  it('leaves a file under the mark to the fsync at publish: no background sync', async () => {
    const path = join(tmp.path, 'small')
    const chunks = chunksOf(MiB - 1)
    const {file, handle, trace} = await traced(path)
    try {
      await pipeline(Readable.from(chunks), writeBackStream(file, MiB))
    } finally {
      await handle.close()
    }

    expect(sha256(await readFile(path))).toBe(sha256(Buffer.concat(chunks)))
    expect(trace.startedAt).toEqual([])
  })

  it('fails when a background sync fails (the disk said EIO), with that error', async () => {
    const path = join(tmp.path, 'archive')
    const eio = Object.assign(new Error('EIO: i/o error, fdatasync'), {code: 'EIO'})
    const {file, handle, trace} = await traced(path, {datasync: () => Promise.reject(eio)})
    try {
      await expect(pipeline(Readable.from(chunksOf(4 * MiB)), writeBackStream(file, MiB))).rejects.toBe(eio)
    } finally {
      await handle.close()
    }

    expect(trace.startedAt.length).toBeGreaterThanOrEqual(1)
  })

  it('fails at its end when the last background sync fails after the last write: the fsync after it would not say', async () => {
    const path = join(tmp.path, 'archive')
    const eio = Object.assign(new Error('EIO: i/o error, fdatasync'), {code: 'EIO'})
    const late = () =>
      new Promise<void>((_resolve, reject) => {
        setTimeout(() => reject(eio), 50)
      })
    const {file, handle, trace} = await traced(path, {datasync: late})
    try {
      // One write, just past the mark: nothing is written after the sync it starts.
      await expect(pipeline(Readable.from([randomBytes(MiB + 10)]), writeBackStream(file, MiB))).rejects.toBe(eio)
    } finally {
      await handle.close()
    }

    expect(trace.startedAt).toEqual([MiB + 10])
  })

  it('continues a write that stops short (as one does when the disk fills up mid-write), from where it stopped', async () => {
    const path = join(tmp.path, 'archive')
    const chunks = chunksOf(300_000)
    let calls = 0
    const {file, handle} = await traced(path)
    const real = file.writev.bind(file)
    const short: WriteBackFile = {
      datasync: () => file.datasync(),
      // At most 1000 bytes a call, cut inside a buffer.
      async writev(buffers) {
        calls++
        const all = Buffer.concat(buffers.map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength)))
        const {bytesWritten} = await real([all.subarray(0, 1000)])
        return {buffers, bytesWritten}
      },
    } as WriteBackFile
    try {
      await pipeline(Readable.from(chunks), writeBackStream(short, MiB))
    } finally {
      await handle.close()
    }

    expect(sha256(await readFile(path))).toBe(sha256(Buffer.concat(chunks)))
    expect(calls).toBeGreaterThanOrEqual(300)
  })

  it('writes past empty chunks (only a write of something that writes nothing is an error)', async () => {
    const path = join(tmp.path, 'archive')
    const chunks = [Buffer.alloc(0), randomBytes(1000), Buffer.alloc(0), randomBytes(10), Buffer.alloc(0)]
    const {file, handle} = await traced(path)
    try {
      await pipeline(Readable.from(chunks), writeBackStream(file, MiB))
    } finally {
      await handle.close()
    }

    expect(sha256(await readFile(path))).toBe(sha256(Buffer.concat(chunks)))
  })

  it('fails on a write that writes nothing, naming the size', async () => {
    const path = join(tmp.path, 'archive')
    const {file, handle} = await traced(path, {
      async writev(buffers) {
        return {buffers, bytesWritten: 0}
      },
    })
    try {
      await expect(pipeline(Readable.from(chunksOf(100_000)), writeBackStream(file, MiB))).rejects.toThrow(
        /^short write: nothing of \d+ bytes written$/,
      )
    } finally {
      await handle.close()
    }
  })
})

describe('FsBackend.save of a stream past the write-back mark', () => {
  it('publishes the bytes whole and leaves no temp file', async () => {
    const backend = new FsBackend(tmp.path)
    const chunks = chunksOf(WRITE_BACK_BYTES + 3 * MiB + 7)
    await backend.save('backups/b/data.tar.zst.age', Readable.from(chunks))
    const saved = await readFile(join(tmp.path, 'backups', 'b', 'data.tar.zst.age'))
    expect(sha256(saved)).toBe(sha256(Buffer.concat(chunks)))
    expect(await readdir(join(tmp.path, 'backups', 'b'))).toEqual(['data.tar.zst.age'])
  })
})
