import {spawnSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {mkdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {Readable} from 'node:stream'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {DecryptOptions, EncryptOptions, Implementations, Manifest} from '../../../../src/lib/archive/types.js'

import {decryptBuffer, encryptBuffer, generateIdentity} from '../../../../src/lib/archive/age.js'
import {Breather} from '../../../../src/lib/archive/breather.js'
import {zstdImplementations} from '../../../../src/lib/archive/compress.js'
import {encodeManifest, manifestTotals} from '../../../../src/lib/archive/manifest.js'
import {readArchive} from '../../../../src/lib/archive/read.js'
import {applyTreeMetadata} from '../../../../src/lib/archive/tree-writer.js'
import {scanDataDir, type ScannedFile} from '../../../../src/lib/archive/walk.js'
import {writeArchive} from '../../../../src/lib/archive/write.js'
import {liveWorkers, PIECE_BYTES} from '../../../../src/lib/archive/zstd-pool.js'
import {BrError} from '../../../../src/lib/errors.js'
import {expectSameTree, LONG_FILE, makeDataDir, memorySink, tempDir, UNICODE_FILE} from './fixture.js'

let work: Awaited<ReturnType<typeof tempDir>>
let data: string
let key: {identity: string; recipient: string}
let files: string[]

beforeAll(async () => {
  work = await tempDir()
  data = join(work.dir, 'mo-data')
  await mkdir(data)
  files = await makeDataDir(data)
  // a cache the caller excludes
  await mkdir(join(data, 'shared-cache'))
  await writeFile(join(data, 'shared-cache', 'c.bin'), 'cache')
  key = await generateIdentity()
})

afterAll(async () => {
  await work.cleanup()
})

let seq = 0
async function backup(encrypt: EncryptOptions, impl: Implementations = {}) {
  const entries = await scanDataDir(data, {exclude: ['shared-cache']})
  const sink = memorySink()
  const backupId = `b${++seq}`
  const result = await writeArchive({
    backupId,
    encrypt,
    entries,
    impl,
    level: 3,
    manifestBase: {chain: [backupId], createdAt: new Date().toISOString(), deleted: [], type: 'full'},
    output: sink.stream,
    root: data,
  })
  return {...result, bytes: sink.bytes()}
}

async function restore(
  bytes: Buffer,
  decrypt: DecryptOptions | null,
  extra: Partial<Parameters<typeof readArchive>[0]> = {},
) {
  const dest = join(work.dir, `restore-${++seq}`)
  await mkdir(dest)
  const result = await readArchive({decrypt, dest, input: Readable.from([bytes]), ...extra})
  // As a restore does: modes and mtimes once every byte is in place (the whole tree only).
  if (!extra.only && !extra.skip) await applyTreeMetadata(dest, result.manifest, {breather: new Breather()})
  return {dest, result}
}

const toKey = (): EncryptOptions => ({recipients: [key.recipient], type: 'recipients'})
const withKey = (): DecryptOptions => ({identities: [key.identity], passphrases: []})

describe('writeArchive → readArchive', () => {
  it('restores every file, dir and symlink with bytes, modes and mtimes', async () => {
    const written = await backup(toKey())
    const m = written.manifest
    expect(written.archiveSize).toBe(written.bytes.length)
    expect(written.archiveSha256).toMatch(/^[\da-f]{64}$/)
    expect(m.entries.map((e) => e.path)).toEqual(
      expect.arrayContaining([LONG_FILE, UNICODE_FILE, 'empty-dir', 'link-to-one']),
    )
    expect(m.entries.some((e) => e.path.startsWith('shared-cache'))).toBe(false)
    expect(
      m.entries
        .filter((e) => e.type === 'file')
        .map((e) => e.path)
        .sort(),
    ).toEqual(files)
    expect(written.rawBytes).toBe(manifestTotals(m).bytes)

    const progress: number[] = []
    const {dest, result} = await restore(written.bytes, withKey(), {
      expected: {sha256: written.archiveSha256, size: written.archiveSize},
      expectedManifest: m,
      onProgress: (p) => progress.push(p.bytesDone),
    })
    expect(result.files).toBe(files.length)
    expect(result.bytes).toBe(manifestTotals(m).bytes)
    expect(encodeManifest(result.manifest).equals(encodeManifest(m))).toBe(true)
    expect(progress.at(-1)).toBe(result.bytes)
    await expectSameTree(data, dest, {exclude: ['shared-cache']})
  })

  it('verifies without writing when there is no dest', async () => {
    const written = await backup(toKey())
    const result = await readArchive({decrypt: withKey(), input: Readable.from([written.bytes])})
    expect(result.files).toBe(files.length)
  })

  const zstds = zstdImplementations()
  for (const [i, zstd] of zstds.entries()) {
    for (const age of ['native', 'typage'] as const) {
      const reader: Implementations = {age: age === 'native' ? 'typage' : 'native', zstd: zstds[(i + 1) % zstds.length]}
      it(`zstd ${zstd} + age ${age} written, read by zstd ${reader.zstd} + age ${reader.age}`, async () => {
        const written = await backup(toKey(), {age, zstd})
        const {dest} = await restore(written.bytes, withKey(), {impl: reader})
        await expectSameTree(data, dest, {exclude: ['shared-cache']})
      })
    }
  }

  it('round-trips with a passphrase, and unencrypted', async () => {
    const locked = await backup({passphrase: 'pass phrase', scryptLogN: 10, type: 'passphrase'})
    await expectSameTree(data, (await restore(locked.bytes, {identities: [], passphrases: ['pass phrase']})).dest, {
      exclude: ['shared-cache'],
    })

    const plain = await backup({type: 'none'})
    expect(plain.bytes.readUInt32LE(0)).toBe(0xfd_2f_b5_28)
    await expectSameTree(data, (await restore(plain.bytes, null)).dest, {exclude: ['shared-cache']})
  })

  it.skipIf(!['/usr/bin/age', '/usr/bin/zstd', '/usr/bin/tar'].every((p) => existsSync(p)))(
    'is what `age -d | zstd -d | tar -x` reads',
    async () => {
      const written = await backup(toKey())
      const identityFile = join(work.dir, 'cli-key.txt')
      await writeFile(identityFile, `${key.identity}\n`)
      const archive = join(work.dir, 'cli.tar.zst.age')
      await writeFile(archive, written.bytes)
      const out = join(work.dir, 'cli-out')
      await mkdir(out)
      const cli = spawnSync(
        'sh',
        ['-c', `age -d -i '${identityFile}' '${archive}' | zstd -d | tar -x -C '${out}' && ls '${out}'`],
        {encoding: 'utf8'},
      )
      expect(cli.stderr).toBe('')
      expect(cli.stdout.split('\n')).toEqual(expect.arrayContaining(['MANIFEST.json', 'data']))
      // ustar headers carry whole seconds: the manifest, not the tar, has the exact mtimes.
      await expectSameTree(data, join(out, 'data'), {exclude: ['shared-cache'], mtimeToleranceMs: 1000})
    },
  )

  it('fails with an integrity error for a wrong key, a truncation, a flipped byte', async () => {
    const written = await backup(toKey())
    const other = await generateIdentity()
    const expected = {sha256: written.archiveSha256, size: written.archiveSize}
    const cases: Array<[string, Buffer, DecryptOptions, RegExp]> = [
      [
        'wrong identity',
        written.bytes,
        {identities: [other.identity], passphrases: []},
        /^no identity matches this archive$/,
      ],
      ['truncated', written.bytes.subarray(0, -100), withKey(), /archive is truncated/],
      ['cut to the header', written.bytes.subarray(0, 200), withKey(), /archive is truncated/],
    ]
    const flipped = Buffer.from(written.bytes)
    flipped[flipped.length >> 1] ^= 0x04
    cases.push(['flipped', flipped, withKey(), /archive does not match the SHA-256 in its record|tampered/])
    for (const [name, bytes, keys, message] of cases) {
      const dest = join(work.dir, `bad-${++seq}`)
      const error = await readArchive({decrypt: keys, dest, expected, input: Readable.from([bytes])}).catch(
        (error_: unknown) => error_,
      )
      expect(error, name).toBeInstanceOf(BrError)
      expect((error as BrError).code, name).toBe('integrity')
      expect((error as BrError).message, name).toMatch(message)
    }

    // Without the record's size and hash, crypto alone still refuses them.
    for (const bytes of [written.bytes.subarray(0, -100), flipped]) {
      const error = await readArchive({decrypt: withKey(), input: Readable.from([bytes])}).catch(
        (error_: unknown) => error_,
      )
      expect((error as BrError).code).toBe('integrity')
      expect((error as BrError).message).toMatch(/truncated|tampered/)
    }
  })

  it('fails an unencrypted archive that was truncated or corrupted', async () => {
    const written = await backup({type: 'none'})
    for (const bytes of [written.bytes.subarray(0, -50), written.bytes.subarray(0, written.bytes.length >> 1)]) {
      for (const zstd of zstdImplementations()) {
        const error = await readArchive({decrypt: null, impl: {zstd}, input: Readable.from([bytes])}).catch(
          (error_: unknown) => error_,
        )
        expect((error as BrError).code, zstd).toBe('integrity')
      }
    }
  })

  it('names the archive in errors, and checks the embedded manifest against manifest.age', async () => {
    const written = await backup(toKey())
    const forged: Manifest = {...written.manifest, createdAt: '2000-01-01T00:00:00.000Z'}
    const error = await readArchive({
      decrypt: withKey(),
      expectedManifest: forged,
      input: Readable.from([written.bytes]),
      label: 'backup X',
    }).catch((error_: unknown) => error_)
    expect((error as BrError).message).toBe('backup X: the manifest inside the archive differs from manifest.age')
  })

  it('writes only what it is asked to, and verifies everything', async () => {
    const written = await backup(toKey())
    const {dest, result} = await restore(written.bytes, withKey(), {
      only: new Set(['nested/a/b/c/deep.txt', 'one.byte']),
      skip: new Set(['one.byte']),
    })
    expect(result.files).toBe(files.length)
    const restored = await scanDataDir(dest)
    expect(restored.filter((e) => e.type !== 'dir').map((e) => e.path)).toEqual(['nested/a/b/c/deep.txt'])
  })

  it('stops when aborted', async () => {
    const controller = new AbortController()
    const entries = await scanDataDir(data, {exclude: ['shared-cache']})
    const promise = writeArchive({
      backupId: 'x',
      encrypt: {type: 'none'},
      entries,
      level: 3,
      manifestBase: {chain: ['x'], createdAt: new Date().toISOString(), deleted: [], type: 'full'},
      onProgress() {
        controller.abort()
      },
      output: memorySink().stream,
      root: data,
      signal: controller.signal,
    })
    controller.abort()
    const error = await promise.catch((error_: unknown) => error_)
    expect((error as BrError).code).toBe('interrupted')
  })

  it('stops reading when aborted', async () => {
    const written = await backup(toKey())
    const controller = new AbortController()
    async function* input() {
      yield written.bytes.subarray(0, 100_000)
      controller.abort()
      yield written.bytes.subarray(100_000)
    }

    const error = await readArchive({
      decrypt: withKey(),
      input: Readable.from(input()),
      signal: controller.signal,
    }).catch((error_: unknown) => error_)
    expect((error as BrError).code).toBe('interrupted')
  })

  it('round-trips an empty data directory', async () => {
    const empty = join(work.dir, 'empty-data')
    await mkdir(empty)
    const sink = memorySink()
    const written = await writeArchive({
      backupId: 'e',
      encrypt: toKey(),
      entries: await scanDataDir(empty),
      level: 3,
      manifestBase: {chain: ['e'], createdAt: new Date().toISOString(), deleted: [], type: 'full'},
      output: sink.stream,
      root: empty,
    })
    expect(written.manifest.entries).toEqual([])
    const {dest, result} = await restore(sink.bytes(), withKey())
    expect(result).toMatchObject({bytes: 0, files: 0})
    expect((await scanDataDir(dest)).map((e) => e.path)).toEqual([''])
  })
})

describe('writeArchive starts the compression workers', () => {
  const owner = {gid: 0, gname: '', uid: 0, uname: ''}
  it.each([
    ['more than a frame of new bytes: before the first file is read', 3 * PIECE_BYTES, 0, 2],
    ['a frame or less: not before a frame is full', PIECE_BYTES, 0, 0],
    ['a file that grew by less than a frame: not before a frame is full', 3 * PIECE_BYTES, 3 * PIECE_BYTES - 4096, 0],
  ])('%s', async (_what, size, baseSize, running) => {
    const file: ScannedFile = {mode: 0o640, mtimeMs: 0, owner, path: 'wal', size, type: 'file'}
    // A file that grew: the base had its first `baseSize` bytes.
    if (baseSize > 0) file.grewFrom = {...file, in: 'b0', sha256: '0'.repeat(64), size: baseSize}
    const atRead: number[] = []
    await writeArchive({
      backupId: 'w',
      encrypt: {type: 'none'},
      entries: [file],
      impl: {zstd: 'napi'},
      level: 1,
      manifestBase: {chain: ['w'], createdAt: new Date().toISOString(), deleted: [], type: 'full'},
      output: memorySink().stream,
      parallelism: 2,
      async *read(entry) {
        atRead.push(liveWorkers())
        yield Buffer.alloc(entry.size, 7)
      },
      root: data,
    })
    expect(atRead).toEqual([running])
    expect(liveWorkers()).toBe(0)
  })
})

describe('encryptBuffer / decryptBuffer', () => {
  it('round-trips small buffers, and leaves them alone without encryption', async () => {
    const bytes = Buffer.from('{"manifest": true}\n')
    const sealed = await encryptBuffer(bytes, {recipients: [key.recipient], type: 'recipients'})
    expect(sealed.subarray(0, 21).toString()).toBe('age-encryption.org/v1')
    expect((await decryptBuffer(sealed, withKey())).equals(bytes)).toBe(true)
    expect((await decryptBuffer(sealed, withKey(), undefined, 'typage')).equals(bytes)).toBe(true)
    expect((await encryptBuffer(bytes, {type: 'none'})).equals(bytes)).toBe(true)
    expect((await decryptBuffer(bytes, null)).equals(bytes)).toBe(true)
    const other = await generateIdentity()
    await expect(decryptBuffer(sealed, {identities: [other.identity], passphrases: []}, 'manifest')).rejects.toThrow(
      'manifest: no identity matches this archive',
    )
  })
})
