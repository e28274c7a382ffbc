/**
 * The tar the write side makes (write.ts packArchive over pack.ts): each file hashed and listed, a
 * file that changes while read refused, owners in the tar and in the manifest.
 */
import {execFileSync} from 'node:child_process'
import {appendFile, chmod, chown, lchown, lstat, mkdir, symlink, truncate, unlink, writeFile} from 'node:fs/promises'
import {userInfo} from 'node:os'
import {join} from 'node:path'
import {pipeline} from 'node:stream/promises'
import {afterAll, beforeAll, beforeEach, describe, expect, it} from 'vitest'

import {scanDataDir, type ScannedEntry} from '../../../../src/lib/archive/walk.js'
import {packArchive} from '../../../../src/lib/archive/write.js'
import {BrError} from '../../../../src/lib/errors.js'
import {memorySink, tempDir} from './fixture.js'

const isRoot = process.getuid?.() === 0
if (!isRoot && process.env.CI) throw new Error('the owner tests need root, and CI runs as root: run them as root')

let work: Awaited<ReturnType<typeof tempDir>>
let root: string

beforeAll(async () => {
  work = await tempDir()
})

afterAll(async () => {
  await work.cleanup()
})

let seq = 0
beforeEach(async () => {
  root = join(work.dir, `data-${++seq}`)
  await mkdir(root)
})

/** Packs `entries` from root, draining the tar; resolves to the manifest or rejects with the first error. */
async function pack(entries: ScannedEntry[], beforeRead?: () => Promise<void>) {
  await beforeRead?.()
  const {done, stream} = packArchive({
    backupId: 'b1',
    entries,
    manifestBase: {chain: ['b1'], createdAt: new Date().toISOString(), deleted: [], type: 'full'},
    root,
  })
  const drained = pipeline(stream, memorySink().stream)
  const [manifest] = await Promise.all([done, drained])
  return manifest
}

describe('packArchive', () => {
  it('hashes each file and lists it in the manifest', async () => {
    await writeFile(join(root, 'f'), 'hello')
    const manifest = await pack(await scanDataDir(root))
    expect(manifest.entries).toEqual([
      expect.objectContaining({
        in: 'b1',
        path: 'f',
        sha256: '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824',
        size: 5,
      }),
    ])
  })

  it('fails loudly, naming the file, when a file grows, shrinks or vanishes while read', async () => {
    await writeFile(join(root, 'small'), 'x')
    await writeFile(join(root, 'wal'), Buffer.alloc(3 * 1024 * 1024, 1))
    const cases: Array<[() => Promise<void>, RegExp]> = [
      [() => appendFile(join(root, 'wal'), 'more'), /^wal changed while it was read: it grew past 3145728 bytes/],
      [() => truncate(join(root, 'wal'), 1000), /^wal changed while it was read: it shrank to 1000 bytes/],
      [() => unlink(join(root, 'wal')), /^wal changed while it was read: it disappeared/],
    ]
    for (const [change, message] of cases) {
      await writeFile(join(root, 'wal'), Buffer.alloc(3 * 1024 * 1024, 1))
      const entries = await scanDataDir(root)
      const error = await pack(entries, change).catch((error_: unknown) => error_)
      expect(error).toBeInstanceOf(BrError)
      expect((error as BrError).message).toMatch(message)
      expect((error as BrError).suggestions.join(',')).toMatch(/service must be stopped/)
    }
  })

  it('lists unchanged files of an incremental without packing them', async () => {
    await writeFile(join(root, 'new'), 'new')
    const unchanged = {
      in: 'b0',
      mode: 0o644,
      mtimeMs: 1,
      path: 'old',
      sha256: 'c'.repeat(64),
      size: 9,
      type: 'file' as const,
    }
    const {done, stream} = packArchive({
      backupId: 'b1',
      entries: await scanDataDir(root),
      manifestBase: {chain: ['b0', 'b1'], createdAt: new Date().toISOString(), deleted: ['gone'], type: 'incremental'},
      root,
      unchanged: [unchanged],
    })
    const names: string[] = []
    const tar = (await import('tar-stream')).default
    const extract = tar.extract()
    const reading = (async () => {
      for await (const entry of extract) {
        names.push(entry.header.name)
        entry.resume()
      }
    })()
    stream.pipe(extract as unknown as NodeJS.WritableStream)
    const [manifest] = await Promise.all([done, reading])
    expect(names).toEqual(['data/', 'data/new', 'MANIFEST.json'])
    expect(manifest.entries.map((e) => e.path)).toEqual(['new', 'old'])
    expect(manifest.deleted).toEqual(['gone'])
  })
})

/** Packs `entries` from root; the manifest and every tar header, in order, and the tar's bytes. */
async function packHeaders(entries: ScannedEntry[]) {
  const {done, stream} = packArchive({
    backupId: 'b1',
    entries,
    manifestBase: {chain: ['b1'], createdAt: new Date().toISOString(), deleted: [], type: 'full'},
    root,
  })
  const sink = memorySink()
  const [manifest] = await Promise.all([done, pipeline(stream, sink.stream)])
  const headers: Array<{
    gid?: number
    gname?: string
    name: string
    pax?: null | Record<string, string>
    uid?: number
    uname?: string
  }> = []
  const tar = (await import('tar-stream')).default
  const extract = tar.extract()
  const reading = (async () => {
    for await (const entry of extract) {
      headers.push(entry.header as (typeof headers)[number])
      entry.resume()
    }
  })()
  extract.end(sink.bytes())
  await reading
  return {bytes: sink.bytes(), headers, manifest}
}

describe('owners, in the tar and in the manifest', () => {
  it('records the data directory itself and every owner, by id and by name', async () => {
    await chmod(root, 0o751)
    await mkdir(join(root, 'd'), {mode: 0o750})
    await writeFile(join(root, 'd/f'), 'x', {mode: 0o640})
    await symlink('d/f', join(root, 'l'))
    const me = userInfo()
    const group = execFileSync('id', ['-gn'], {encoding: 'utf8'}).trim()
    const owner = {gid: me.gid, gname: group, uid: me.uid, uname: me.username}
    const {headers, manifest} = await packHeaders(await scanDataDir(root))
    expect(manifest.root).toEqual({mode: 0o751, mtimeMs: (await lstat(root)).mtimeMs, owner})
    expect(manifest.entries.map((e) => [e.path, e.owner])).toEqual([
      ['d', owner],
      ['d/f', owner],
      ['l', owner],
    ])
    expect(headers.map((h) => [h.name, h.uid, h.gid, h.uname, h.gname])).toEqual([
      ['data/', me.uid, me.gid, me.username, group],
      ['data/d', me.uid, me.gid, me.username, group],
      ['data/d/f', me.uid, me.gid, me.username, group],
      ['data/l', me.uid, me.gid, me.username, group],
      ['MANIFEST.json', 0, 0, '', ''],
    ])
  })

  it('writes pax records for ids and names the ustar header cannot hold, as GNU tar reads them', async () => {
    await writeFile(join(root, 'f'), 'x')
    const owner = {gid: 262_144, gname: 'g'.repeat(33), uid: 3_000_000, uname: 'u'.repeat(40)}
    const small = {gid: 262_143, gname: 'h'.repeat(32), uid: 7, uname: 'v'}
    const {bytes, headers} = await packHeaders([
      {mode: 0o755, mtimeMs: 1000, owner: small, path: '', type: 'dir'},
      {mode: 0o644, mtimeMs: 1000, owner, path: 'f', size: 1, type: 'file'},
    ])
    expect(headers[0]).toMatchObject({
      gid: 262_143,
      gname: 'h'.repeat(32),
      name: 'data/',
      pax: null,
      uid: 7,
      uname: 'v',
    })
    expect(headers[1].pax).toMatchObject({gid: '262144', gname: 'g'.repeat(33), uid: '3000000', uname: 'u'.repeat(40)})
    const listing = execFileSync('tar', ['-tv', '--numeric-owner'], {encoding: 'utf8', input: bytes})
    expect(listing).toMatch(/ 3000000\/262144 .* data\/f\n/)
    expect(execFileSync('tar', ['-tv'], {encoding: 'utf8', input: bytes})).toContain(
      `${'u'.repeat(40)}/${'g'.repeat(33)}`,
    )
  })

  describe.skipIf(!isRoot)(
    `as root${isRoot ? '' : ' (SKIPPED: not root, cannot chown; CI runs these as root)'}`,
    () => {
      it('scans owners the host has no name for, and tar --same-owner gives every owner and mode back from the tar alone', async () => {
        await chmod(root, 0o755)
        await mkdir(join(root, 'd'), {mode: 0o750})
        await writeFile(join(root, 'd/f'), 'x', {mode: 0o640})
        await symlink('d/f', join(root, 'l'))
        await chown(root, 23_456, 34_567)
        await chown(join(root, 'd'), 23_457, 34_568)
        await chown(join(root, 'd/f'), 400_000, 400_001)
        await lchown(join(root, 'l'), 23_458, 34_569)
        const {bytes, manifest} = await packHeaders(await scanDataDir(root))
        expect(manifest.root?.owner).toEqual({gid: 34_567, gname: '', uid: 23_456, uname: ''})
        expect(manifest.entries.map((e) => [e.path, e.owner?.uid, e.owner?.gid])).toEqual([
          ['d', 23_457, 34_568],
          ['d/f', 400_000, 400_001],
          ['l', 23_458, 34_569],
        ])
        const out = join(work.dir, `tar-out-${seq}`)
        await mkdir(out)
        execFileSync('tar', ['-x', '--same-owner', '--same-permissions', '-C', out], {input: bytes})
        for (const [path, uid, gid, mode] of [
          ['data', 23_456, 34_567, 0o755],
          ['data/d', 23_457, 34_568, 0o750],
          ['data/d/f', 400_000, 400_001, 0o640],
          ['data/l', 23_458, 34_569, undefined],
        ] as const) {
          const info = await lstat(join(out, path))
          expect([path, info.uid, info.gid], path).toEqual([path, uid, gid])
          if (mode !== undefined) expect(info.mode & 0o7777, path).toBe(mode)
        }
      })
    },
  )
})
