/**
 * readArchive over a zstd stream of many independent frames (the parallel read side): the tree
 * comes out byte for byte with 1 and 2 decompression threads; with 1, the one worker hashes and
 * writes the bytes in the buffers it decompressed them into, before it fills them again
 * (read-worker.ts); a damaged frame, a frame that lies about its content size, a file that cannot
 * be written and an abort fail as they should, with the workers ended.
 */
import {mkdir, readdir, readFile, writeFile} from 'node:fs/promises'
import {createRequire} from 'node:module'
import {join} from 'node:path'
import {Readable} from 'node:stream'
import {Worker} from 'node:worker_threads'
import tar from 'tar-stream'
import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'

import type {Manifest, ManifestEntry} from '../../../../src/lib/archive/types.js'

import {FileSink} from '../../../../src/lib/archive/file-sink.js'
import {comparePaths, encodeManifest} from '../../../../src/lib/archive/manifest.js'
import {liveReadWorkers} from '../../../../src/lib/archive/read-worker.js'
import {readArchive} from '../../../../src/lib/archive/read.js'
import {ParallelDecompressor} from '../../../../src/lib/archive/zstd-parallel.js'
import {BrError} from '../../../../src/lib/errors.js'
import {mixedBytes, sha256, tempDir} from './fixture.js'

const require = createRequire(import.meta.url)
const napi = require('zstd-napi') as {compress(b: Buffer, p?: {compressionLevel?: number}): Buffer}
const MiB = 1024 * 1024

const files: Record<string, Buffer> = {
  // A name past ustar's 100 bytes: a pax header before it, as pack.ts writes for long paths.
  [`c/${'p'.repeat(140)}.bin`]: mixedBytes(1_500_000),
  'a.bin': mixedBytes(5 * MiB + 17),
  'b.txt': Buffer.alloc(3 * MiB, 'INSERT INTO t VALUES (1, "mo");\n'),
  'c/d.bin': mixedBytes(700_000),
  'c/empty': Buffer.alloc(0),
}

let work: Awaited<ReturnType<typeof tempDir>>
let tarBytes: Buffer
let n = 0

beforeAll(async () => {
  work = await tempDir('moctl-br-frames-')
  tarBytes = await tarOf(files)
})

afterAll(async () => {
  await work.cleanup()
})

/** A backup's tar of `files` (and their directory c/), its manifest last. */
async function tarOf(files: Record<string, Buffer>): Promise<Buffer> {
  const entries: ManifestEntry[] = [
    {mode: 0o755, mtimeMs: 1000, path: 'c', type: 'dir'} as ManifestEntry,
    ...Object.entries(files).map(([path, body]): ManifestEntry => ({
      in: 'f',
      mode: 0o644,
      mtimeMs: 1000,
      path,
      sha256: sha256(body),
      size: body.length,
      type: 'file',
    })),
  ].sort((a, b) => comparePaths(a.path, b.path))
  const manifest: Manifest = {
    backupId: 'f',
    chain: ['f'],
    createdAt: '2026-01-01T00:00:00.000Z',
    deleted: [],
    entries,
    format: 1,
    type: 'full',
  }
  const pack = tar.pack()
  const items: Array<[Parameters<tar.Pack['entry']>[0], Buffer]> = [
    [{name: 'data/c', type: 'directory'}, Buffer.alloc(0)],
    ...Object.entries(files).map(([path, body]): [Parameters<tar.Pack['entry']>[0], Buffer] => [
      {name: `data/${path}`, size: body.length, type: 'file'},
      body,
    ]),
    [{name: 'MANIFEST.json', size: encodeManifest(manifest).length, type: 'file'}, encodeManifest(manifest)],
  ]
  const done = (async () => {
    for (const [header, body] of items) {
      await new Promise<void>((resolve, reject) => {
        pack.entry(header, body, (error) => (error ? reject(error) : resolve()))
      })
    }

    pack.finalize()
  })()
  const chunks: Buffer[] = []
  for await (const chunk of pack) chunks.push(chunk as Buffer)
  await done
  return Buffer.concat(chunks)
}

/** A tar stream (by default the one of `files`) as independent frames of `piece` bytes, each with its content size. */
function frames(piece: number, bytes = tarBytes): Buffer[] {
  const out: Buffer[] = []
  for (let i = 0; i < bytes.length; i += piece) out.push(napi.compress(bytes.subarray(i, i + piece)))
  return out
}

/** REF operations (file-sink.ts) posted to worker threads while `run` runs. */
async function refsPosted(run: () => Promise<unknown>): Promise<number> {
  const post = vi.spyOn(Worker.prototype, 'postMessage')
  try {
    await run()
    const batches = post.mock.calls.map(([m]) => m as {kind?: string; ops?: unknown[][]})
    return batches.filter((m) => m.kind === 'batch').flatMap((m) => m.ops!.filter((op) => op[0] === 3)).length
  } finally {
    post.mockRestore()
  }
}

/** File descriptors this process has open. */
const openFds = async (): Promise<number> => (await readdir('/proc/self/fd')).length

async function read(
  archive: Buffer,
  parallelism: number,
  write = true,
  more: {before?: (dest: string) => Promise<void>; signal?: AbortSignal} = {},
): Promise<string> {
  const dest = join(work.dir, String(++n))
  await mkdir(dest)
  await more.before?.(dest)
  // 64 KiB writes, as the age layer gives them.
  const pieces: Buffer[] = []
  for (let i = 0; i < archive.length; i += 65_536) pieces.push(archive.subarray(i, i + 65_536))
  await readArchive({
    decrypt: null,
    dest: write ? dest : undefined,
    input: Readable.from(pieces),
    label: 'backup f',
    parallelism,
    signal: more.signal,
  })
  return dest
}

describe('readArchive over independent zstd frames', () => {
  it('writes the tree byte for byte with 1 and 2 decompression threads', async () => {
    const archive = Buffer.concat(frames(MiB))
    for (const parallelism of [1, 2]) {
      const dest = await read(archive, parallelism)
      for (const [path, body] of Object.entries(files))
        expect((await readFile(join(dest, path))).equals(body)).toBe(true)
    }
  })

  it('with 2 threads, is done with the output where it says: bytes spoiled from there on change nothing, and frames reuse buffers', async () => {
    // Every output the decompressor pushes, and where it ends; once the reader says it is done
    // before a position, the bytes before it are spoiled, as a reused buffer would be.
    const pushed: Array<{chunk: Buffer; end: number}> = []
    let end = 0
    const push = vi.spyOn(ParallelDecompressor.prototype, 'push').mockImplementation(function (
      this: ParallelDecompressor,
      chunk: Buffer | null,
    ) {
      if (chunk) pushed.push({chunk, end: (end += chunk.length)})
      return Readable.prototype.push.call(this, chunk)
    })
    const original = ParallelDecompressor.prototype.doneWith
    const done = vi.spyOn(ParallelDecompressor.prototype, 'doneWith').mockImplementation(function (
      this: ParallelDecompressor,
      position: number,
    ) {
      for (const p of pushed) if (p.end <= position && p.chunk.length > 0) p.chunk.fill(0xee)
      original.call(this, position)
    })
    try {
      // Two threads: the bytes are copied to the file sink's own worker (with one, the worker that
      // decompressed them reads them in place, in its own order: the test below).
      const archive = Buffer.concat(frames(MiB))
      const dest = await read(archive, 2)
      for (const [path, body] of Object.entries(files))
        expect((await readFile(join(dest, path))).equals(body)).toBe(true)
      expect(done.mock.calls.length).toBeGreaterThan(10)
      // 11 MiB of tar in 1 MiB frames: the reader gives buffers back as it goes.
      expect((done.mock.contexts[0] as ParallelDecompressor).outputsReused).toBeGreaterThanOrEqual(3)
      // Verify only (every file hashed, none written), with 2 threads: the same, or an integrity error.
      pushed.length = 0
      end = 0
      await read(archive, 2, false)
      expect((done.mock.contexts.at(-1) as ParallelDecompressor).outputsReused).toBeGreaterThanOrEqual(3)
    } finally {
      push.mockRestore()
      done.mockRestore()
    }
  })

  it('verify with 1 thread hashes every byte in the buffer it was decompressed into, before that buffer is filled again', async () => {
    const done = vi.spyOn(ParallelDecompressor.prototype, 'doneWith')
    try {
      // 512 KiB frames (the smallest a worker takes): 22 of them through a handful of buffers.
      // A byte hashed after its buffer was filled again would fail the manifest check.
      const archive = Buffer.concat(frames(512 * 1024))
      // The big chunks went to the worker where they lay (shared memory), not copied.
      expect(await refsPosted(async () => read(archive, 1, false))).toBeGreaterThan(20)
      expect((done.mock.contexts[0] as ParallelDecompressor).outputsReused).toBeGreaterThanOrEqual(15)
      // A restore, and a verify with two threads: every chunk copied to the file sink's own worker.
      let dest = ''
      expect(
        await refsPosted(async () => {
          dest = await read(archive, 1)
        }),
      ).toBe(0)
      for (const [path, body] of Object.entries(files))
        expect((await readFile(join(dest, path))).equals(body)).toBe(true)
      expect(await refsPosted(async () => read(archive, 2, false))).toBe(0)
      expect(liveReadWorkers()).toBe(0)
    } finally {
      done.mockRestore()
    }
  })

  it('verify with 1 thread copies small chunks into batches: 3000 small files and a large one cost a few messages', async () => {
    const many: Record<string, Buffer> = {'c/big.bin': mixedBytes(3 * MiB)}
    for (let i = 0; i < 3000; i++) many[`c/e${i}`] = Buffer.alloc(i % 3 === 0 ? 100 : 0, 'x')
    const archive = Buffer.concat(frames(512 * 1024, await tarOf(many)))
    const post = vi.spyOn(Worker.prototype, 'postMessage')
    try {
      // Every file hashed as the manifest says, or an integrity error.
      await read(archive, 1, false)
      const batches = post.mock.calls.filter(([m]) => (m as {kind?: string}).kind === 'batch')
      expect(batches.length).toBeGreaterThan(0)
      expect(batches.length).toBeLessThan(30)
      expect(liveReadWorkers()).toBe(0)
    } finally {
      post.mockRestore()
    }
  })

  it('verify with 1 thread fails when the worker dies, without hanging, and leaves no worker', async () => {
    const archive = Buffer.concat(frames(512 * 1024))
    const original = ParallelDecompressor.prototype.doneWith
    let calls = 0
    const done = vi.spyOn(ParallelDecompressor.prototype, 'doneWith').mockImplementation(function (
      this: ParallelDecompressor,
      position: number,
    ) {
      if (++calls === 5) this.killOneWorker().catch(() => {})
      original.call(this, position)
    })
    try {
      const error = await read(archive, 1, false).catch((error_: unknown) => error_)
      expect(error).toBeInstanceOf(BrError)
      expect((error as BrError).message).toMatch(/worker/)
      expect(liveReadWorkers()).toBe(0)
    } finally {
      done.mockRestore()
    }
  })

  it('with 1 thread, fails on a file it cannot create, as the file system says, and leaves no worker or file open', async () => {
    const archive = Buffer.concat(frames(512 * 1024))
    const fds = await openFds()
    const error = await read(archive, 1, true, {
      before: async (dest) => writeFile(join(dest, 'b.txt'), 'there'),
    }).catch((error_: unknown) => error_)
    expect((error as NodeJS.ErrnoException).code).toBe('EEXIST')
    expect(liveReadWorkers()).toBe(0)
    // A restore's own zstd worker is ended, not waited for: its fds go with it.
    await vi.waitFor(async () => expect(await openFds()).toBe(fds))
  })

  it('with 1 thread, verify and restore stop when aborted, and leave no worker or file open', async () => {
    const archive = Buffer.concat(frames(512 * 1024))
    const original = FileSink.prototype.write
    let controller = new AbortController()
    const spy = vi.spyOn(FileSink.prototype, 'write').mockImplementation(function (this: FileSink, chunk) {
      controller.abort()
      return original.call(this, chunk)
    })
    const fds = await openFds()
    try {
      for (const write of [false, true]) {
        controller = new AbortController()
        const error = await read(archive, 1, write, {signal: controller.signal}).catch((error_: unknown) => error_)
        expect((error as BrError).code).toBe('interrupted')
        expect(liveReadWorkers()).toBe(0)
        // A restore's own zstd worker is ended, not waited for: its fds go with it.
        await vi.waitFor(async () => expect(await openFds()).toBe(fds))
      }
    } finally {
      spy.mockRestore()
    }
  })

  it("relies on tar-stream's byteOffset: where an entry's bytes begin in the tar", async () => {
    const extract = tar.extract()
    const seen: string[] = []
    const paxed: string[] = []
    const reading = (async () => {
      for await (const entry of extract) {
        const {byteOffset, name, size = 0} = entry.header as typeof entry.header & {byteOffset?: number}
        expect(typeof byteOffset).toBe('number')
        const body = tarBytes.subarray(byteOffset, (byteOffset as number) + size)
        const chunks: Buffer[] = []
        for await (const chunk of entry) chunks.push(chunk as Buffer)
        expect(Buffer.concat(chunks).equals(body)).toBe(true)
        seen.push(name)
        if (entry.header.pax) paxed.push(name)
      }
    })()
    extract.end(tarBytes)
    await reading
    expect(seen).toEqual(['data/c', ...Object.keys(files).map((p) => `data/${p}`), 'MANIFEST.json'])
    // The long name came through a pax header, and its offset is still its data's.
    expect(paxed).toEqual([`data/c/${'p'.repeat(140)}.bin`])
  })

  it('refuses a damaged frame and a frame that lies about its size as integrity errors', async () => {
    const parts = frames(MiB)
    // The text file's frames compress well: flip bytes inside one of their compressed blocks.
    const text = parts.findIndex((p) => p.length < MiB / 4)
    const damaged = parts.map((p) => Buffer.from(p))
    for (let i = 20; i < 60; i++) damaged[text][i] ^= 0x5a
    // A single-segment header keeps its 4-byte content size at offset 5; one byte more than it holds.
    const lying = parts.map((p) => Buffer.from(p))
    expect(lying[1][4] >> 6).toBe(2)
    lying[1].writeUInt32LE(lying[1].readUInt32LE(5) + 1, 5)
    for (const archive of [damaged, lying]) {
      for (const parallelism of [1, 2]) {
        const error = await read(Buffer.concat(archive), parallelism).catch((error_: unknown) => error_)
        expect(error).toBeInstanceOf(BrError)
        expect((error as BrError).code).toBe('integrity')
        expect((error as BrError).message).toMatch(/^backup f: .*zstd/)
        expect(liveReadWorkers()).toBe(0)
      }
    }
  })
})
