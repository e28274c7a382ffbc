import {execFile} from 'node:child_process'
import {mkdir, readdir, readFile, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {promisify} from 'node:util'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {scanDataDir} from '../../../../../src/lib/archive/walk.js'
import {checkCloneRoom, cloneFiles, clonePathFor} from '../../../../../src/lib/backup/sources/clone.js'
import {tempDir} from '../../../../helpers/cli.js'

const run = promisify(execFile)
const root = process.getuid?.() === 0

let tmp: {cleanup: () => Promise<void>; path: string}
let data: string

beforeEach(async () => {
  tmp = await tempDir()
  data = join(tmp.path, 'mo-data')
  await mkdir(join(data, 'shared', 'ckp'), {recursive: true})
  await mkdir(join(data, 'local'), {recursive: true})
  await mkdir(join(data, 'empty'), {recursive: true})
  await writeFile(join(data, 'shared', 'obj_00000'), Buffer.alloc(300_000, 7))
  await writeFile(join(data, 'shared', 'ckp', 'meta_1_2.ckp'), 'checkpoint')
  await writeFile(join(data, 'local', 'hk_data'), 'hakeeper')
})

afterEach(async () => {
  await tmp.cleanup()
})

describe('cloneFiles', () => {
  it('puts the clone beside the data dir, or under --clone-dir', () => {
    expect(clonePathFor('/opt/mo/mo-data', 'abc')).toBe('/opt/mo/.mo-data.clone-abc')
    expect(clonePathFor('/opt/mo/mo-data', 'abc', '/scratch')).toBe('/scratch/.mo-data.clone-abc')
  })

  it('copies exactly the files it is given, with their directories, byte for byte', async () => {
    const entries = await scanDataDir(data)
    const some = entries.filter((e) => e.path !== 'local/hk_data')
    const dest = clonePathFor(data, 'id1')
    const result = await cloneFiles(data, dest, some)
    expect(result).toMatchObject({bytes: 300_000 + 'checkpoint'.length, files: 2})
    expect(typeof result.reflink).toBe('boolean')
    expect((await stat(dest)).mode & 0o777).toBe(0o700)
    expect(await readdir(dest)).toEqual(['shared'])
    expect(await readFile(join(dest, 'shared', 'obj_00000'))).toEqual(Buffer.alloc(300_000, 7))
    expect(await readFile(join(dest, 'shared', 'ckp', 'meta_1_2.ckp'), 'utf8')).toBe('checkpoint')
    // The data dir is only read.
    expect((await readdir(data)).sort()).toEqual(['empty', 'local', 'shared'])
  })

  // Mounting a small tmpfs needs root, as the CI machines have.
  it.skipIf(!root)('refuses a clone that cannot fit, before copying more than one file (exit 2)', async () => {
    const small = join(tmp.path, 'small')
    await mkdir(small)
    await run('mount', ['-t', 'tmpfs', '-o', 'size=128k', 'tmpfs', small])
    try {
      const dest = clonePathFor(data, 'id2', small)
      await expect(cloneFiles(data, dest, await scanDataDir(data))).rejects.toMatchObject({
        exitCode: 2,
        message: expect.stringMatching(
          /^not enough space to clone 293 KiB beside the data directory \(.* free on .*small, which cannot reflink\)$/,
        ),
      })
    } finally {
      await run('umount', [small])
    }
  })

  it('stops when aborted (exit 130)', async () => {
    for (let i = 0; i < 20; i++) await writeFile(join(data, 'shared', `more_${i}`), 'x')
    const abort = new AbortController()
    abort.abort()
    await expect(
      cloneFiles(data, clonePathFor(data, 'id3'), await scanDataDir(data), {signal: abort.signal}),
    ).rejects.toMatchObject({exitCode: 130})
  })
})

describe('checkCloneRoom', () => {
  it('before the stop: says how much a clone needs and what is free, and leaves nothing behind', async () => {
    const entries = await scanDataDir(data)
    const dest = clonePathFor(data, 'room')
    const room = await checkCloneRoom(data, dest, entries)
    expect(room.bytes).toBe(300_000 + 'checkpoint'.length + 'hakeeper'.length)
    expect(room.free).toBeGreaterThan(0)
    expect(typeof room.reflink).toBe('boolean')
    expect((await readdir(tmp.path)).sort()).toEqual(['mo-data'])
  })

  it.skipIf(!root)('refuses (exit 2) where the files do not fit and reflinks cannot work', async () => {
    const small = join(tmp.path, 'small')
    await mkdir(small)
    await run('mount', ['-t', 'tmpfs', '-o', 'size=128k', 'tmpfs', small])
    try {
      await expect(checkCloneRoom(data, clonePathFor(data, 'x', small), await scanDataDir(data))).rejects.toMatchObject(
        {
          code: 'usage',
          message: expect.stringMatching(
            /^not enough space to clone 293 KiB beside the data directory \(\d+ KiB free on .*small, which cannot reflink\)$/,
          ),
        },
      )
      expect(await readdir(small)).toEqual([])
    } finally {
      await run('umount', [small])
    }
  })
})
