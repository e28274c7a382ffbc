/**
 * Hostile archives, built entry by entry with tar-stream (and zstd, unencrypted: age would only
 * hide them behind a key the attacker also has). Each must be refused as an integrity error,
 * with nothing written outside the destination.
 */
import {lstat, mkdir, readdir, readFile, symlink, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {Readable} from 'node:stream'
import tar from 'tar-stream'
import {afterAll, beforeAll, beforeEach, describe, expect, it} from 'vitest'

import type {Manifest, ManifestEntry} from '../../../../src/lib/archive/types.js'

import {Breather} from '../../../../src/lib/archive/breather.js'
import {createCompressor} from '../../../../src/lib/archive/compress.js'
import {comparePaths, encodeManifest} from '../../../../src/lib/archive/manifest.js'
import {readArchive} from '../../../../src/lib/archive/read.js'
import {applyTreeMetadata} from '../../../../src/lib/archive/tree-writer.js'
import {BrError} from '../../../../src/lib/errors.js'
import {exists, sha256, tempDir, through} from './fixture.js'
import {planOwners} from './plan-owners.js'

type TarHeader = Parameters<tar.Pack['entry']>[0]
type Item = {body?: Buffer; header: TarHeader}

let work: Awaited<ReturnType<typeof tempDir>>
let dest: string
let outside: string

beforeAll(async () => {
  work = await tempDir()
})

afterAll(async () => {
  await work.cleanup()
})

let seq = 0
/** work/<n>/dest is where an archive goes; work/<n>/outside must stay empty. */
async function freshDest(): Promise<void> {
  const dir = join(work.dir, String(++seq))
  dest = join(dir, 'dest')
  outside = join(dir, 'outside')
  await mkdir(dest, {recursive: true})
  await mkdir(outside)
}

beforeEach(freshDest)

const file = (name: string, text: string): Item => ({
  body: Buffer.from(text),
  header: {name, size: Buffer.byteLength(text), type: 'file'},
})
const dir = (name: string): Item => ({header: {name, type: 'directory'}})
const link = (name: string, target: string): Item => ({header: {linkname: target, name, type: 'symlink'}})

/** The manifest an honest packer would have written for these data/ entries. */
function manifestFor(items: Item[]): Manifest {
  const entries: ManifestEntry[] = items
    .filter((i) => i.header.name.startsWith('data/'))
    .map((i): ManifestEntry => {
      const path = i.header.name.slice('data/'.length)
      if (i.header.type === 'directory') return {mode: 0o755, mtimeMs: 1000, path, type: 'dir'}
      if (i.header.type === 'symlink') return {mtimeMs: 1000, path, target: i.header.linkname!, type: 'symlink'}
      return {in: 'evil', mode: 0o644, mtimeMs: 1000, path, sha256: sha256(i.body!), size: i.body!.length, type: 'file'}
    })
    .sort((a, b) => comparePaths(a.path, b.path))
  return {
    backupId: 'evil',
    chain: ['evil'],
    createdAt: '2026-01-01T00:00:00.000Z',
    deleted: [],
    entries,
    format: 1,
    type: 'full',
  }
}

async function craft(items: Item[], manifest: Manifest | null = null): Promise<Buffer> {
  const pack = tar.pack()
  const all = manifest
    ? [
        ...items,
        {
          body: encodeManifest(manifest),
          header: {name: 'MANIFEST.json', size: encodeManifest(manifest).length, type: 'file'},
        } as Item,
      ]
    : items
  const done = (async () => {
    for (const item of all) {
      await new Promise<void>((resolve, reject) => {
        pack.entry(item.header, item.body ?? Buffer.alloc(0), (error) => (error ? reject(error) : resolve()))
      })
    }

    pack.finalize()
  })()
  const chunks: Buffer[] = []
  for await (const chunk of pack) chunks.push(chunk as Buffer)
  await done
  return through(Buffer.concat(chunks), createCompressor(3))
}

/** Reads `archive` into the current dest, then moves on to a fresh one. */
async function refused(archive: Buffer, message: RegExp): Promise<void> {
  const error = await readArchive({decrypt: null, dest, input: Readable.from([archive]), label: 'evil'}).catch(
    (error_: unknown) => error_,
  )
  expect(error).toBeInstanceOf(BrError)
  expect((error as BrError).code).toBe('integrity')
  expect((error as BrError).message).toMatch(message)
  expect(await readdir(outside)).toEqual([])
  expect(await exists(join(dest, '..', 'x'))).toBe(false)
  await freshDest()
}

describe('readArchive refuses hostile archives', () => {
  it('accepts the honest control archive', async () => {
    const items = [dir('data/d'), file('data/d/f.txt', 'hello'), link('data/l', 'd/f.txt')]
    const result = await readArchive({
      decrypt: null,
      dest,
      input: Readable.from([await craft(items, manifestFor(items))]),
    })
    expect(result.files).toBe(1)
    expect(await readdir(dest)).toEqual(['d', 'l'])
  })

  it('a data/../x entry', async () => {
    const items = [file('data/../x', 'escaped')]
    await refused(
      await craft(items, manifestFor(items)),
      /refusing archive entry "data\/..\/x": its path is absolute, empty or has \. or \.\./,
    )
  })

  it('absolute paths, in and out of data/', async () => {
    for (const name of [`data/${outside}/x`, `${outside}/x`, '/x']) {
      const items = [file(name, 'escaped')]
      await refused(await craft(items, manifestFor(items)), /refusing archive entry/)
    }
  })

  it('a symlink leading outside, then a file through it', async () => {
    for (const target of [outside, '../outside', '../../outside', 'a/../../..']) {
      const items = [link('data/out', target), file('data/out/x', 'through the link')]
      await refused(await craft(items, manifestFor(items)), /symlink leading outside the data directory/)
    }
  })

  it('a file beneath a symlink that stays inside', async () => {
    const items = [dir('data/d'), link('data/l', 'd'), file('data/l/x', 'beneath a link')]
    await refused(await craft(items, manifestFor(items)), /"data\/l\/x": it lies beneath the symlink l/)
  })

  it('a file beneath a symlink already in a non-empty destination', async () => {
    await symlink(outside, join(dest, 'planted'))
    const items = [file('data/planted/x', 'through a planted link')]
    await refused(
      await craft(items, manifestFor(items)),
      /refusing to write beneath planted: it is a symlink in the destination/,
    )
  })

  it('a file over one already in the destination', async () => {
    await writeFile(join(dest, 'f'), 'there first')
    const items = [file('data/f', 'over it')]
    const error = await readArchive({
      decrypt: null,
      dest,
      input: Readable.from([await craft(items, manifestFor(items))]),
    }).catch((error_: unknown) => error_)
    expect((error as NodeJS.ErrnoException).code).toBe('EEXIST')
  })

  it('a file not in the manifest', async () => {
    const honest = [file('data/a', 'a')]
    await refused(
      await craft([...honest, file('data/extra', 'smuggled')], manifestFor(honest)),
      /evil: extra is in the archive but not in its manifest/,
    )
  })

  it('a file the manifest lists but the archive lacks, or with other bytes', async () => {
    const items = [file('data/a', 'a'), file('data/b', 'b')]
    await refused(await craft([items[0]], manifestFor(items)), /b is in the manifest but missing from the archive/)
    const other = [file('data/a', 'a'), file('data/b', 'B')]
    await refused(await craft(other, manifestFor(items)), /b does not match its SHA-256 in the manifest/)
  })

  it('a missing MANIFEST.json', async () => {
    await refused(await craft([file('data/a', 'a')]), /evil: archive is truncated: it has no MANIFEST\.json/)
  })

  it('entries after MANIFEST.json', async () => {
    const items = [file('data/a', 'a')]
    const archive = await craft([
      ...items,
      {
        body: encodeManifest(manifestFor(items)),
        header: {name: 'MANIFEST.json', size: encodeManifest(manifestFor(items)).length, type: 'file'},
      },
      file('data/late', 'late'),
    ])
    await refused(archive, /"data\/late": it comes after MANIFEST\.json/)
  })

  it('duplicate entries', async () => {
    const items = [file('data/a', 'a'), file('data/a', 'again')]
    await refused(await craft(items, manifestFor([items[0]])), /"data\/a": it appears twice/)
  })

  it('hard links, devices and fifos', async () => {
    for (const header of [
      {linkname: 'data/a', name: 'data/hard', type: 'link'},
      {name: 'data/fifo', type: 'fifo'},
      {devmajor: 1, devminor: 3, name: 'data/null', type: 'character-device'},
    ] as TarHeader[]) {
      await refused(
        await craft([file('data/a', 'a'), {header}], manifestFor([file('data/a', 'a')])),
        new RegExp(`its type ${header.type} is not a file`),
      )
    }
  })

  it('names outside data/', async () => {
    await refused(await craft([file('etc/passwd', 'root')], manifestFor([])), /"etc\/passwd": it is outside data\//)
  })

  it('a malformed manifest', async () => {
    const items = [file('data/a', 'a')]
    const bad = {...manifestFor(items), entries: [{...manifestFor(items).entries[0], sha256: 'nope'}]} as Manifest
    await refused(await craft(items, bad), /invalid sha256/)
  })
})

const withRoot = (items: Item[], mode = 0o751): Manifest => ({...manifestFor(items), root: {mode, mtimeMs: 5000}})
const ownerOf = (uid: number) => ({gid: uid + 1, gname: '', uid, uname: ''})

describe('the data directory itself (data/)', () => {
  it('gives dest the mode and mtime the manifest records for it', async () => {
    const items = [file('data/f', 'x')]
    const {manifest} = await readArchive({
      decrypt: null,
      dest,
      input: Readable.from([await craft([dir('data/'), ...items], withRoot(items))]),
    })
    await applyTreeMetadata(dest, manifest, {breather: new Breather()})
    const info = await lstat(dest)
    expect(info.mode & 0o7777).toBe(0o751)
    expect(info.mtimeMs).toBe(5000)
  })

  it('refuses data/ as anything but a directory, a data/ the manifest lacks, and a missing data/', async () => {
    const items = [file('data/f', 'x')]
    await refused(
      await craft([file('data/', 'x'), ...items], withRoot(items)),
      /"data\/": it names the data directory itself, but is a file/,
    )
    await refused(
      await craft([dir('data/'), ...items], manifestFor(items)),
      /has an entry data\/ for the data directory, its manifest none/,
    )
    await refused(
      await craft(items, withRoot(items)),
      /the data directory's own entry data\/ is missing from the archive/,
    )
    await refused(await craft([dir('data/'), dir('data/'), ...items], withRoot(items)), /"data\/": it appears twice/)
  })
})

const isRoot = process.getuid?.() === 0
if (!isRoot && process.env.CI) throw new Error('the owner tests need root, and CI runs as root: run them as root')

describe.skipIf(!isRoot)(
  `owners on restore${isRoot ? '' : ' (SKIPPED: not root, cannot chown; CI runs these as root)'}`,
  () => {
    it('chowns every entry and dest before chmod, so setuid kept by --keep-special-modes survives', async () => {
      const items = [dir('data/d'), file('data/d/f', 'x'), link('data/l', 'd/f')]
      const manifest: Manifest = {
        ...manifestFor(items),
        entries: [
          {mode: 0o750, mtimeMs: 1000, owner: ownerOf(23_001), path: 'd', type: 'dir'},
          {
            ...(manifestFor(items).entries[1] as Extract<ManifestEntry, {type: 'file'}>),
            mode: 0o4750,
            owner: ownerOf(23_002),
          },
          {mtimeMs: 1000, owner: ownerOf(23_003), path: 'l', target: 'd/f', type: 'symlink'},
        ],
        root: {mode: 0o755, mtimeMs: 5000, owner: ownerOf(23_000)},
      }
      const owners = await planOwners(manifest, {runner: {egid: 0, euid: 0, groups: []}})
      const read = await readArchive({
        decrypt: null,
        dest,
        input: Readable.from([await craft([dir('data/'), ...items], manifest)]),
      })
      await applyTreeMetadata(dest, read.manifest, {breather: new Breather(), keepSpecialModes: true, owners})
      for (const [path, uid, mode] of [
        ['', 23_000, 0o755],
        ['d', 23_001, 0o750],
        ['d/f', 23_002, 0o4750],
        ['l', 23_003, undefined],
      ] as const) {
        const info = await lstat(join(dest, path))
        expect([path, info.uid, info.gid]).toEqual([path, uid, uid + 1])
        if (mode !== undefined) expect(info.mode & 0o7777, path).toBe(mode)
      }
    })
  },
)

/** A manifest of chain [old, evil] where `f` is assembled: 5 bytes in old, `tail` appended in evil. */
const assembled = (tail: string, others: Item[] = []): Manifest => {
  const m = manifestFor(others)
  const f: ManifestEntry = {
    in: 'evil',
    mode: 0o644,
    mtimeMs: 1000,
    parts: [
      {in: 'old', sha256: sha256(Buffer.from('start')), size: 5},
      {in: 'evil', sha256: sha256(Buffer.from(tail)), size: Buffer.byteLength(tail)},
    ],
    path: 'f',
    sha256: sha256(Buffer.from(`start${tail}`)),
    size: 5 + Buffer.byteLength(tail),
    type: 'file',
  }
  return {
    ...m,
    chain: ['old', 'evil'],
    entries: [...m.entries, f].sort((a, b) => comparePaths(a.path, b.path)),
    format: 2,
    type: 'incremental',
  }
}

/** Read with the manifest as manifest.age would give it: refused, nothing outside dest. */
async function refusedAgainst(archive: Buffer, manifest: Manifest, message: RegExp, write = true): Promise<void> {
  const error = await readArchive({
    decrypt: null,
    dest: write ? dest : undefined,
    expectedManifest: manifest,
    input: Readable.from([archive]),
    label: 'evil',
  }).catch((error_: unknown) => error_)
  expect(error).toBeInstanceOf(BrError)
  expect((error as BrError).code).toBe('integrity')
  expect((error as BrError).message).toMatch(message)
  expect(await readdir(outside)).toEqual([])
  await freshDest()
}

describe('appended bytes (append/<path>)', () => {
  it('accepts the honest one: the tail at its offset, the file at its full size', async () => {
    const m = assembled('-tail')
    await readArchive({
      decrypt: null,
      dest,
      expectedManifest: m,
      input: Readable.from([await craft([file('append/f', '-tail')], m)]),
    })
    const bytes = await readFile(join(dest, 'f'))
    expect(bytes.length).toBe(10)
    expect(bytes.subarray(5).toString()).toBe('-tail')
    // The earlier part's place is a hole until an older archive writes it (restore/chain.ts).
    expect(bytes.subarray(0, 5).equals(Buffer.alloc(5))).toBe(true)
  })

  it('appended bytes the manifest does not place, or places as a whole file', async () => {
    const a = [file('data/a', 'a')]
    await refusedAgainst(
      await craft([...a, file('append/x', 'smuggled')], manifestFor(a)),
      manifestFor(a),
      /evil: refusing archive entry "append\/x": its manifest has no earlier part to append it to/,
    )
    await refusedAgainst(
      await craft([...a, file('append/x', 'smuggled')], manifestFor(a)),
      manifestFor(a),
      /evil: x is in the archive but not in its manifest/,
      false,
    )
    await refusedAgainst(
      await craft([file('append/a', 'a')], manifestFor(a)),
      manifestFor(a),
      /evil: a is appended bytes in the archive, but its manifest says the archive holds it whole/,
      false,
    )
  })

  it('a whole file where the manifest says appended bytes, or other bytes', async () => {
    const m = assembled('-tail')
    await refusedAgainst(
      await craft([file('data/f', 'start-tail')], m),
      m,
      /evil: f is whole in the archive, but its manifest says the archive holds the bytes appended to it/,
    )
    await refusedAgainst(
      await craft([file('append/f', '-TAIL')], m),
      m,
      /evil: the bytes appended to f does not match its SHA-256 in the manifest/,
    )
    await refusedAgainst(
      await craft([file('append/f', '-tail!')], m),
      m,
      /the bytes appended to f is 6 bytes in the archive, 5 in the manifest/,
    )
  })

  it('as anything but a file, outside the tree, or twice', async () => {
    const m = assembled('-tail')
    await refusedAgainst(
      await craft([dir('append/f')], m),
      m,
      /"append\/f": appended bytes must be a file, not a directory/,
    )
    await refusedAgainst(
      await craft([link('append/f', 'x')], m),
      m,
      /"append\/f": appended bytes must be a file, not a symlink/,
    )
    await refusedAgainst(
      await craft([file('append/../f', '-tail')], m),
      m,
      /"append\/..\/f": its path is absolute, empty or has/,
    )
    await refusedAgainst(
      await craft([file('append/', '-tail')], m),
      m,
      /"append\/": its path is absolute, empty or has/,
    )
    await refusedAgainst(
      await craft([file('data/f', 'start'), file('append/f', '-tail')], m),
      m,
      /"append\/f": it appears twice/,
    )
    await refusedAgainst(
      await craft([link('data/l', '.'), file('append/l/f', '-tail')], m),
      m,
      /"append\/l\/f": it lies beneath the symlink l/,
    )
  })
})
