import {execFileSync} from 'node:child_process'
import {appendFile, mkdir, symlink, truncate, unlink, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {pipeline} from 'node:stream/promises'
import {afterAll, beforeAll, beforeEach, describe, expect, it} from 'vitest'

import {comparePaths} from '../../../../src/lib/archive/manifest.js'
import {packArchive, scanDataDir, type ScannedEntry} from '../../../../src/lib/archive/pack.js'
import {BrError} from '../../../../src/lib/errors.js'
import {memorySink, tempDir} from './fixture.js'

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

async function scanError(options: Parameters<typeof scanDataDir>[1] = {}): Promise<BrError> {
  const error = await scanDataDir(root, options).catch((error_: unknown) => error_)
  expect(error).toBeInstanceOf(BrError)
  return error as BrError
}

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

describe('scanDataDir', () => {
  it('lists files, dirs and inside symlinks sorted by path, without following links', async () => {
    await mkdir(join(root, 'a/b'), {recursive: true})
    await writeFile(join(root, 'a/b/f'), '12345')
    await writeFile(join(root, 'a-b'), 'x')
    await symlink('a/b', join(root, 'ln'))
    const entries = await scanDataDir(root)
    expect(entries.map((e) => `${e.type} ${e.path}`)).toEqual([
      'dir a',
      'file a-b',
      'dir a/b',
      'file a/b/f',
      'symlink ln',
    ])
    expect(entries.map((e) => e.path)).toEqual(entries.map((e) => e.path).sort(comparePaths))
    expect(entries.find((e) => e.path === 'a/b/f')).toMatchObject({mode: 0o644, size: 5, type: 'file'})
    expect(entries.find((e) => e.path === 'ln')).toMatchObject({target: 'a/b', type: 'symlink'})
  })

  it('leaves out excluded prefixes, and only whole path segments', async () => {
    for (const p of ['shared-cache/x', 'shared-cache2/y', 'tmp/z', 'keep/tmp']) {
      await mkdir(join(root, p, '..'), {recursive: true})
      await writeFile(join(root, p), p)
    }

    const paths = (await scanDataDir(root, {exclude: ['shared-cache', './tmp/']})).map((e) => e.path)
    expect(paths).toEqual(['keep', 'keep/tmp', 'shared-cache2', 'shared-cache2/y'])
  })

  it('refuses symlinks that lead outside, absolute or relative', async () => {
    await symlink('/etc/passwd', join(root, 'abs'))
    expect((await scanError()).message).toBe('symlink abs in the data directory leads outside it (/etc/passwd)')
    await unlink(join(root, 'abs'))
    await mkdir(join(root, 'd'))
    await symlink('../../x', join(root, 'd/rel'))
    expect((await scanError()).message).toMatch(/symlink d\/rel .* leads outside it/)
    expect((await scanError()).suggestions.join(',')).toMatch(/--exclude d\/rel/)
    expect(await scanDataDir(root, {exclude: ['d/rel']})).toHaveLength(1)
  })

  it('refuses fifos (and other special files)', async () => {
    execFileSync('mkfifo', [join(root, 'pipe')])
    expect((await scanError()).message).toBe('pipe in the data directory is not a file, directory or symlink')
  })

  it('stops when aborted', async () => {
    const error = await scanError({signal: AbortSignal.abort()})
    expect(error.code).toBe('interrupted')
  })
})

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
    expect(names).toEqual(['data/new', 'MANIFEST.json'])
    expect(manifest.entries.map((e) => e.path)).toEqual(['new', 'old'])
    expect(manifest.deleted).toEqual(['gone'])
  })
})
