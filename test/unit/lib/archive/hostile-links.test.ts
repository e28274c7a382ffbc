/**
 * Symlink chains, special mode bits and holes, with archives made the way an attacker who knows
 * only the public recipient makes them: tar-stream entries, zstd, age to the recipient. Each
 * chain below passes a check of every link on its own (`symlinkStaysInside`) and leads out only
 * through other links; the restore must refuse it (integrity), naming the entry, whatever the
 * order of the entries.
 */
import {lstat, mkdir, readdir, readFile, readlink, stat, symlink} from 'node:fs/promises'
import {join} from 'node:path'
import {Readable} from 'node:stream'
import tar from 'tar-stream'
import {afterAll, beforeAll, beforeEach, describe, expect, it} from 'vitest'

import type {Manifest, ManifestEntry} from '../../../../src/lib/archive/types.js'

import {createEncryptStream, generateIdentity} from '../../../../src/lib/archive/age.js'
import {Breather} from '../../../../src/lib/archive/breather.js'
import {createCompressor} from '../../../../src/lib/archive/compress.js'
import {comparePaths, decodeManifest, encodeManifest} from '../../../../src/lib/archive/manifest.js'
import {resolveSymlink, symlinkStaysInside} from '../../../../src/lib/archive/paths.js'
import {readArchive} from '../../../../src/lib/archive/read.js'
import {applyTreeMetadata} from '../../../../src/lib/archive/tree-writer.js'
import {scanDataDir} from '../../../../src/lib/archive/walk.js'
import {BrError} from '../../../../src/lib/errors.js'
import {sha256, tempDir, through} from './fixture.js'

type TarHeader = Parameters<tar.Pack['entry']>[0]
type Item = {body?: Buffer; header: TarHeader; mode?: number}

let work: Awaited<ReturnType<typeof tempDir>>
let key: {identity: string; recipient: string}
let dest: string
let seq = 0

beforeAll(async () => {
  work = await tempDir()
  key = await generateIdentity()
})

afterAll(async () => {
  await work.cleanup()
})

/** work/<n>/root/dest: a link that got out would point at work/<n>/root or above. */
async function freshDest(): Promise<void> {
  dest = join(work.dir, String(++seq), 'root', 'dest')
  await mkdir(dest, {recursive: true})
}

beforeEach(freshDest)

const file = (name: string, body: Buffer | string, mode = 0o644): Item => {
  const bytes = Buffer.from(body)
  return {body: bytes, header: {name, size: bytes.length, type: 'file'}, mode}
}

const dir = (name: string, mode = 0o755): Item => ({header: {name, type: 'directory'}, mode})
const link = (name: string, target: string): Item => ({header: {linkname: target, name, type: 'symlink'}})

/** The manifest an honest packer would have written for these entries (any order). */
function manifestFor(items: Item[]): Manifest {
  const entries = items
    .map((i): ManifestEntry => {
      const path = i.header.name.slice('data/'.length)
      if (i.header.type === 'directory') return {mode: i.mode!, mtimeMs: 1000, path, type: 'dir'}
      if (i.header.type === 'symlink') return {mtimeMs: 1000, path, target: i.header.linkname!, type: 'symlink'}
      return {
        in: 'evil',
        mode: i.mode!,
        mtimeMs: 1000,
        path,
        sha256: sha256(i.body!),
        size: i.body!.length,
        type: 'file',
      }
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

/** tar → zstd → age to the public recipient: all an attacker with write access needs. */
async function craft(items: Item[], manifest: Manifest = manifestFor(items)): Promise<Buffer> {
  const pack = tar.pack()
  const body = encodeManifest(manifest)
  const all = [...items, {body, header: {name: 'MANIFEST.json', size: body.length, type: 'file'}} as Item]
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
  return through(
    Buffer.concat(chunks),
    createCompressor(3),
    await createEncryptStream({recipients: [key.recipient], type: 'recipients'}),
  )
}

const read = (archive: Buffer, extra: Partial<Parameters<typeof readArchive>[0]> = {}) =>
  readArchive({
    decrypt: {identities: [key.identity], passphrases: []},
    dest,
    input: Readable.from([archive]),
    label: 'backup evil',
    ...extra,
  })

/** Read into dest, then give the tree its modes and times, as a restore does. */
async function restored(archive: Buffer, options: {keepSpecialModes?: boolean} = {}): Promise<void> {
  const {manifest} = await read(archive)
  await applyTreeMetadata(dest, manifest, {breather: new Breather(), ...options})
}

async function refused(archive: Buffer, message: RegExp, extra: Partial<Parameters<typeof readArchive>[0]> = {}) {
  const error = await read(archive, extra).catch((error_: unknown) => error_)
  expect(error).toBeInstanceOf(BrError)
  expect((error as BrError).code).toBe('integrity')
  expect((error as BrError).message).toMatch(message)
  // Whatever was made in dest, no link in it resolves outside dest.
  await expectNoEscape(dest)
  await freshDest()
}

/** Every symlink under `root`, followed by the kernel, stays under `root` (or does not resolve). */
async function expectNoEscape(root: string): Promise<void> {
  const {realpath} = await import('node:fs/promises')
  const real = await realpath(root)
  const walk = async (d: string): Promise<void> => {
    for (const name of await readdir(d)) {
      const path = join(d, name)
      const info = await lstat(path)
      if (info.isDirectory()) await walk(path)
      else if (info.isSymbolicLink()) {
        const to = await realpath(path).catch(() => null)
        if (to !== null) expect(to === real || to.startsWith(real + '/'), `${path} -> ${to}`).toBe(true)
      }
    }
  }

  await walk(root)
}

describe('resolveSymlink', () => {
  it('follows links as the kernel does', () => {
    const links = new Map([
      ['a', 'b'],
      ['b', 'a'],
      ['ok', 's/l/s/f'],
      ['s/l', '..'],
      ['x', 's/l/s/l/../..'],
    ])
    // Each stays inside on its own: that is why the lexical check is not enough.
    for (const [path, target] of links) expect(symlinkStaysInside(path, target)).toBe(true)
    expect(resolveSymlink(links, 's/l')).toBe('inside')
    expect(resolveSymlink(links, 'x')).toBe('outside')
    expect(resolveSymlink(links, 'ok')).toBe('inside')
    expect(resolveSymlink(links, 'a')).toBe('loop')
  })
})

describe('symlink chains that lead out are refused', () => {
  it('accepts honest chains of links that stay inside', async () => {
    const items = [
      dir('data/s'),
      dir('data/s/d'),
      file('data/s/d/f', 'hello'),
      link('data/s/l', '..'),
      link('data/x', 's/l/s/l/s/d/f'),
      link('data/y', 'x'),
      link('data/s/d/up', '../l/s/d/f'),
    ]
    await read(await craft(items))
    expect(await readFile(join(dest, 'y'), 'utf8')).toBe('hello')
    expect(await readFile(join(dest, 's/d/up'), 'utf8')).toBe('hello')
    expect(await readlink(join(dest, 'x'))).toBe('s/l/s/l/s/d/f')
  })

  it('s/l -> .. then a link through s/l/s/l/../..', async () => {
    const items = [dir('data/s'), link('data/s/l', '..'), link('data/x', 's/l/s/l/../..')]
    await refused(
      await craft(items),
      /refusing archive entry "data\/x": it is a symlink: .*leads outside the data directory/,
    )
  })

  it('the same, the link first and the one it goes through after it', async () => {
    const items = [link('data/x', 's/l/s/l/../..'), dir('data/s'), link('data/s/l', '..')]
    await refused(await craft(items), /"data\/x": it is a symlink: .*leads outside/)
  })

  it('a link to a link', async () => {
    const items = [dir('data/s'), link('data/s/l', '..'), link('data/a', 's/l'), link('data/b', 'a/s/l/../../..')]
    await refused(await craft(items), /"data\/b": it is a symlink: .*leads outside/)
    const reversed = [link('data/b', 'a/..'), link('data/a', 's/l'), dir('data/s'), link('data/s/l', '..')]
    await refused(await craft(reversed), /"data\/b": it is a symlink: .*leads outside/)
  })

  it('.. through a link deeper in the tree', async () => {
    const items = [dir('data/d'), dir('data/d/e'), link('data/d/e/l', '../..'), link('data/y', 'd/e/l/..')]
    await refused(await craft(items), /"data\/y": it is a symlink: .*leads outside/)
  })

  it('a dir symlink, then an entry beneath it', async () => {
    const items = [dir('data/s'), link('data/s/l', '..'), link('data/s/l/s/x', '../..')]
    await refused(
      await craft(items, manifestFor(items.slice(0, 2))),
      /"data\/s\/l\/s\/x": it lies beneath the symlink s\/l/,
    )
  })

  it('a loop of links', async () => {
    const items = [link('data/a', 'b'), link('data/b', 'a')]
    await refused(await craft(items), /"data\/[ab]": it is a symlink: it is part of a loop of symlinks/)
  })

  it('a link through a link made by a newer archive of the chain', async () => {
    // Restore writes newest first: s/l -> .. is already in dest when this older archive comes.
    const items = [link('data/x', 's/l/s/l/../..')]
    await refused(await craft(items), /"data\/x": it is a symlink: .*leads outside/, {
      links: new Map([['s/l', '..']]),
    })
  })

  it('a manifest whose links lead out together is refused before any archive is read', () => {
    const m = manifestFor([dir('data/s'), link('data/s/l', '..'), link('data/x', 's/l/s/l/../..')])
    expect(() => decodeManifest(encodeManifest(m))).toThrow(/manifest symlink x: .*leads outside the data directory/)
  })
})

const specialItems = () => [dir('data/d', 0o3777), file('data/d/suid', 'x', 0o4755), file('data/sgid', 'y', 0o2750)]

describe('special mode bits', () => {
  it('are cleared by default: a MatrixOne data dir never has them', async () => {
    await restored(await craft(specialItems()))
    expect((await stat(join(dest, 'd'))).mode % 0o1_0000).toBe(0o777)
    expect((await stat(join(dest, 'd/suid'))).mode % 0o1_0000).toBe(0o755)
    expect((await stat(join(dest, 'sgid'))).mode % 0o1_0000).toBe(0o750)
  })

  it('are kept with keepSpecialModes', async () => {
    await restored(await craft(specialItems()), {keepSpecialModes: true})
    expect((await stat(join(dest, 'd'))).mode % 0o1_0000).toBe(0o3777)
    expect((await stat(join(dest, 'd/suid'))).mode % 0o1_0000).toBe(0o4755)
    expect((await stat(join(dest, 'sgid'))).mode % 0o1_0000).toBe(0o2750)
  })
})

describe('holes', () => {
  it('runs of zeros are restored as holes, the bytes unchanged', async () => {
    const mib = 1024 * 1024
    // Zeros at the start, between data, and at the end; data not aligned to 64 KiB.
    const bytes = Buffer.concat([
      Buffer.alloc(4 * mib),
      Buffer.from('data in the middle'),
      Buffer.alloc(4 * mib),
      Buffer.alloc(100, 7),
      Buffer.alloc(3 * mib + 5),
    ])
    await read(await craft([file('data/sparse', bytes), file('data/small-zeros', Buffer.alloc(1000))]))
    const info = await stat(join(dest, 'sparse'))
    expect(info.size).toBe(bytes.length)
    expect(sha256(await readFile(join(dest, 'sparse')))).toBe(sha256(bytes))
    // 11 MiB of content, two 64 KiB blocks of data: a few hundred KiB allocated at most.
    expect(info.blocks * 512).toBeLessThan(512 * 1024)
    expect(await readFile(join(dest, 'small-zeros'))).toEqual(Buffer.alloc(1000))
  })
})

describe('the backup scan', () => {
  it('refuses a data dir whose links lead out together, so no backup is made that restore refuses', async () => {
    const root = join(work.dir, 'scan-root', 'data')
    await mkdir(join(root, 's'), {recursive: true})
    await symlink('..', join(root, 's', 'l'))
    await symlink('s/l/s/l/../..', join(root, 'x'))
    await expect(scanDataDir(root)).rejects.toThrow(
      /symlink x in the data directory: .*leads outside the data directory/,
    )
  })
})
