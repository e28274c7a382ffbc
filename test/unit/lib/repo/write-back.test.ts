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
  it('writes every chunk in order and syncs in the background as it goes, one sync at a time', async () => {
    const path = join(tmp.path, 'archive')
    const chunks = chunksOf(9 * MiB + 12_345)
    const {file, handle, trace} = await traced(path)
    try {
      await pipeline(Readable.from(chunks), writeBackStream(file, MiB))
      // The stream ends after the last sync it started has finished.
      expect(trace.running).toBe(0)
    } finally {
      await handle.close()
    }

    expect(sha256(await readFile(path))).toBe(sha256(Buffer.concat(chunks)))
    expect(trace.mostAtOnce).toBe(1)
    // At least one sync per few marks passed (a sync still running lets marks go by), none early.
    expect(trace.startedAt.length).toBeGreaterThanOrEqual(2)
    expect(trace.startedAt.length).toBeLessThanOrEqual(9)
    expect(trace.startedAt[0]).toBeGreaterThanOrEqual(MiB)
    for (let i = 1; i < trace.startedAt.length; i++)
      expect(trace.startedAt[i] - trace.startedAt[i - 1]).toBeGreaterThanOrEqual(MiB)
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

  it('fails on a write that stops short, naming the counts', async () => {
    const path = join(tmp.path, 'archive')
    const {file, handle} = await traced(path, {
      async writev(buffers) {
        const size = buffers.reduce((sum, b) => sum + b.byteLength, 0)
        return {buffers, bytesWritten: size - 1}
      },
    })
    try {
      await expect(pipeline(Readable.from(chunksOf(100_000)), writeBackStream(file, MiB))).rejects.toThrow(
        /^short write: \d+ of \d+ bytes$/,
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
