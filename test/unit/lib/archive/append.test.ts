/**
 * A file that grew (the WAL, appended in place) across the archives of a chain: written by
 * writeArchive as its appended bytes only (`append/<path>`, manifest `parts`) when it still
 * begins with the base's bytes, whole otherwise; read back by readArchive into one file, newest
 * archive first (the tail at its offset in a new file, the earlier parts written into it), as
 * restore/chain.ts does. Real files, unencrypted archives (age changes nothing here).
 */
import {appendFile, lstat, mkdir, open, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {Readable} from 'node:stream'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {FileEntry, Manifest} from '../../../../src/lib/archive/types.js'

import {readArchive} from '../../../../src/lib/archive/read.js'
import {scanDataDir, type ScannedEntry} from '../../../../src/lib/archive/walk.js'
import {writeArchive} from '../../../../src/lib/archive/write.js'
import {memorySink, mixedBytes, sha256, tempDir} from './fixture.js'

let work: Awaited<ReturnType<typeof tempDir>>
let data: string
const WAL = 'wal/0001.log'

beforeAll(async () => {
  work = await tempDir()
  data = join(work.dir, 'mo-data')
  await mkdir(join(data, 'wal'), {recursive: true})
})

afterAll(async () => {
  await work.cleanup()
})

/** Packs `data` as backup `id` of `chain`; a file listed in `grew` is given its base entry, as plan.ts does. */
async function pack(id: string, chain: string[], grew: Map<string, FileEntry> = new Map()) {
  const entries = (await scanDataDir(data)).map((e): ScannedEntry =>
    e.type === 'file' && grew.has(e.path) ? {...e, grewFrom: grew.get(e.path)} : e,
  )
  const sink = memorySink()
  const result = await writeArchive({
    backupId: id,
    encrypt: {type: 'none'},
    entries,
    level: 3,
    manifestBase: {
      chain,
      createdAt: new Date().toISOString(),
      deleted: [],
      type: chain.length > 1 ? 'incremental' : 'full',
    },
    output: sink.stream,
    root: data,
  })
  return {...result, bytes: sink.bytes()}
}

const fileOf = (m: Manifest, path = WAL) => m.entries.find((e) => e.path === path) as FileEntry

let seq = 0
const freshDest = async () => {
  const dest = join(work.dir, `dest-${++seq}`)
  await mkdir(dest)
  return dest
}

describe('a file that grew', () => {
  it('is packed as its appended bytes, and read back into one file from both archives', async () => {
    const first = mixedBytes(300_000)
    await writeFile(join(data, WAL), first)
    const full = await pack('b1', ['b1'])
    expect(full.manifest.format).toBe(1)
    const base = fileOf(full.manifest)

    const tail = mixedBytes(70_001)
    await appendFile(join(data, WAL), tail)
    const inc = await pack('b2', ['b1', 'b2'], new Map([[WAL, base]]))
    // Only the new bytes were read into the archive; the manifest says how the file is made.
    expect(inc.rawBytes).toBe(tail.length)
    expect(inc.manifest.format).toBe(2)
    const whole = Buffer.concat([first, tail])
    expect(fileOf(inc.manifest)).toMatchObject({
      in: 'b2',
      parts: [
        {in: 'b1', sha256: base.sha256, size: first.length},
        {in: 'b2', sha256: sha256(tail), size: tail.length},
      ],
      sha256: sha256(whole),
      size: whole.length,
    })

    // Newest first: the tail lands at its offset in a new file (a hole before it), then the
    // older archive writes its part into that file.
    const dest = await freshDest()
    const newer = await readArchive({
      decrypt: null,
      dest,
      expectedManifest: inc.manifest,
      input: Readable.from([inc.bytes]),
    })
    expect(newer.bytes).toBe(tail.length)
    expect((await lstat(join(dest, WAL))).size).toBe(whole.length)
    const older = await readArchive({
      decrypt: null,
      dest,
      expectedManifest: full.manifest,
      input: Readable.from([full.bytes]),
      into: new Set([WAL]),
      only: new Set([WAL]),
    })
    expect(older.bytes).toBe(first.length)
    expect((await readFile(join(dest, WAL))).equals(whole)).toBe(true)

    // A third backup appends again: three parts, the first two as the chain held them.
    const more = mixedBytes(65_536)
    await appendFile(join(data, WAL), more)
    const third = await pack('b3', ['b1', 'b2', 'b3'], new Map([[WAL, fileOf(inc.manifest)]]))
    expect(third.rawBytes).toBe(more.length)
    expect(fileOf(third.manifest).parts).toEqual([
      ...fileOf(inc.manifest).parts!,
      {in: 'b3', sha256: sha256(more), size: more.length},
    ])
    expect(fileOf(third.manifest).sha256).toBe(sha256(Buffer.concat([whole, more])))
    const dest3 = await freshDest()
    for (const [archive, into] of [
      [third, undefined],
      [inc, new Set([WAL])],
      [full, new Set([WAL])],
    ] as const) {
      await readArchive({
        decrypt: null,
        dest: dest3,
        expectedManifest: archive.manifest,
        input: Readable.from([archive.bytes]),
        into,
        only: into,
      })
    }

    expect((await readFile(join(dest3, WAL))).equals(Buffer.concat([whole, more]))).toBe(true)
  })

  it("is packed whole when its first bytes are no longer the base's, or it is read from elsewhere", async () => {
    await writeFile(join(data, WAL), mixedBytes(200_000))
    const full = await pack('c1', ['c1'])
    const handle = await open(join(data, WAL), 'r+')
    await handle.write(Buffer.from('rewritten'), 0, 9, 1000)
    await handle.close()
    await appendFile(join(data, WAL), mixedBytes(10_000))
    const inc = await pack('c2', ['c1', 'c2'], new Map([[WAL, fileOf(full.manifest)]]))
    expect(inc.rawBytes).toBe(210_000)
    expect(inc.manifest.format).toBe(1)
    const entry = fileOf(inc.manifest)
    expect(entry.parts).toBeUndefined()
    expect(entry.sha256).toBe(sha256(await readFile(join(data, WAL))))
    const dest = await freshDest()
    await readArchive({decrypt: null, dest, expectedManifest: inc.manifest, input: Readable.from([inc.bytes])})
    expect((await readFile(join(dest, WAL))).equals(await readFile(join(data, WAL)))).toBe(true)
  })

  it('verifies without a destination: the appended bytes against their part', async () => {
    await writeFile(join(data, WAL), mixedBytes(100_000))
    const full = await pack('d1', ['d1'])
    await appendFile(join(data, WAL), mixedBytes(1000))
    const inc = await pack('d2', ['d1', 'd2'], new Map([[WAL, fileOf(full.manifest)]]))
    const result = await readArchive({decrypt: null, expectedManifest: inc.manifest, input: Readable.from([inc.bytes])})
    expect(result.bytes).toBe(1000)
    expect(result.manifest.format).toBe(2)
    // Against the embedded manifest alone (no manifest.age), too.
    const embedded = await readArchive({decrypt: null, input: Readable.from([inc.bytes])})
    expect(fileOf(embedded.manifest).parts).toHaveLength(2)
  })
})
