/** The data-dir walk (walk.ts): what a scan lists, leaves out and refuses. */
import {execFileSync} from 'node:child_process'
import {mkdir, symlink, unlink, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, beforeEach, describe, expect, it} from 'vitest'

import {comparePaths} from '../../../../src/lib/archive/manifest.js'
import {scanDataDir} from '../../../../src/lib/archive/walk.js'
import {BrError} from '../../../../src/lib/errors.js'
import {tempDir} from './fixture.js'

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

describe('scanDataDir', () => {
  it('lists files, dirs and inside symlinks sorted by path, without following links', async () => {
    await mkdir(join(root, 'a/b'), {recursive: true})
    await writeFile(join(root, 'a/b/f'), '12345')
    await writeFile(join(root, 'a-b'), 'x')
    await symlink('a/b', join(root, 'ln'))
    const entries = await scanDataDir(root)
    expect(entries.map((e) => `${e.type} ${e.path}`)).toEqual([
      'dir ',
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
    expect(paths).toEqual(['', 'keep', 'keep/tmp', 'shared-cache2', 'shared-cache2/y'])
  })

  it('refuses symlinks that lead outside, absolute or relative', async () => {
    await symlink('/etc/passwd', join(root, 'abs'))
    expect((await scanError()).message).toBe('symlink abs in the data directory leads outside it (/etc/passwd)')
    await unlink(join(root, 'abs'))
    await mkdir(join(root, 'd'))
    await symlink('../../x', join(root, 'd/rel'))
    expect((await scanError()).message).toMatch(/symlink d\/rel .* leads outside it/)
    expect((await scanError()).suggestions.join(',')).toMatch(/--exclude d\/rel/)
    expect((await scanDataDir(root, {exclude: ['d/rel']})).map((e) => e.path)).toEqual(['', 'd'])
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
