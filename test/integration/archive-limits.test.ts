/**
 * The archive's limits through the real CLI: a sparse file comes back sparse, file names that are
 * not UTF-8 are refused before anything is stopped or written, and setuid/setgid bits come back
 * only with --keep-special-modes. The memory goal (a GiB of zeros under 256 MiB peak RSS) is met
 * in the bench, bench/memory.mjs, not timed here.
 */
import {chmod, mkdir, open, readdir, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {backupArgs, encryptTo, readWith, restoreArgs, serviceArgs, suiteKey, type SuiteKey} from '../helpers/args.js'
import {runInProcess, tempDir} from '../helpers/cli.js'

const SIZE = 8 * 1024 * 1024
let work: Awaited<ReturnType<typeof tempDir>>
let key: SuiteKey

beforeAll(async () => {
  work = await tempDir()
  key = await suiteKey(work.path)
})

afterAll(async () => {
  await work.cleanup()
})

const mode = async (path: string) => (await stat(path)).mode % 0o1_0000

async function backup(dataDir: string, repo: string, extra: string[] = []) {
  const r = await runInProcess(backupArgs(repo, dataDir, ...encryptTo(key), '--service', 'none', '--json', ...extra))
  return {...r, id: r.code === 0 ? (JSON.parse(r.stdout).id as string) : ''}
}

describe('holes', () => {
  it('a sparse file comes back sparse, with its data in place', async () => {
    const data = join(work.path, 'sparse-data')
    const repo = join(work.path, 'sparse-repo')
    await mkdir(data)
    // 8 MiB with a little data in the middle: two 4 MiB holes around it.
    const handle = await open(join(data, 'sparse.bin'), 'w')
    await handle.write(Buffer.from('in the middle'), 0, 13, SIZE / 2)
    await handle.truncate(SIZE)
    await handle.close()
    const b = await backup(data, repo)
    expect(b.code, b.stderr).toBe(0)

    const target = join(work.path, 'sparse-restored')
    const r = await runInProcess(restoreArgs(b.id, repo, target, ...readWith(key), '--service', 'none', '--json'))
    expect(r.code, r.stderr).toBe(0)
    const info = await stat(join(target, 'sparse.bin'))
    expect(info.size).toBe(SIZE)
    // Holes: one 64 KiB block of data allocated, not 8 MiB.
    expect(info.blocks * 512).toBeLessThan(1024 * 1024)
    const middle = Buffer.alloc(13)
    const h = await open(join(target, 'sparse.bin'))
    await h.read(middle, 0, 13, SIZE / 2)
    await h.close()
    expect(middle.toString()).toBe('in the middle')
  })
})

describe('file names that are not UTF-8', () => {
  it('are refused before the service is stopped or anything is written (exit 2), named and escaped', async () => {
    const data = join(work.path, 'odd-data')
    const repo = join(work.path, 'odd-repo')
    await mkdir(join(data, 'sub'), {recursive: true})
    await writeFile(join(data, 'fine.txt'), 'fine')
    // Latin-1 "café": the byte 0xe9 alone is not UTF-8.
    await writeFile(Buffer.concat([Buffer.from(join(data, 'sub', 'caf')), Buffer.from([0xe9])]), 'x')
    const stopped = join(work.path, 'stopped')
    const r = await runInProcess(backupArgs(repo, data, '--no-encrypt', ...serviceArgs(`touch ${stopped}`, 'true')))
    expect(r.code, r.stderr).toBe(2)
    expect(r.stderr).toContain(
      String.raw`cannot back up sub/caf\xe9 in the data directory: its name is not valid UTF-8`,
    )
    expect(r.stderr).toMatch(/rename it to valid UTF-8/)
    // Nothing stopped, nothing written.
    await expect(stat(stopped)).rejects.toThrow(/ENOENT/)
    const backups = await readdir(join(repo, 'backups')).catch(() => [])
    expect(backups).toEqual([])
  })

  it('a symlink whose target is not UTF-8 too', async () => {
    const data = join(work.path, 'odd-link-data')
    await mkdir(data)
    const {symlink} = await import('node:fs/promises')
    await symlink(Buffer.from([0x61, 0xff]), join(data, 'l'))
    const r = await runInProcess(
      backupArgs(join(work.path, 'odd-link-repo'), data, '--no-encrypt', '--service', 'none'),
    )
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(
      String.raw`cannot back up l in the data directory: its target is not valid UTF-8 (a\xff)`,
    )
  })
})

describe('special mode bits', () => {
  it('setuid and setgid come back only with --keep-special-modes', async () => {
    const data = join(work.path, 'modes-data')
    const repo = join(work.path, 'modes-repo')
    await mkdir(join(data, 'd'), {recursive: true})
    await writeFile(join(data, 'd', 'tool'), '#!/bin/sh\n')
    await chmod(join(data, 'd', 'tool'), 0o4755)
    await chmod(join(data, 'd'), 0o2775)
    const b = await backup(data, repo)
    expect(b.code, b.stderr).toBe(0)

    const plain = join(work.path, 'modes-plain')
    const r1 = await runInProcess(restoreArgs(b.id, repo, plain, ...readWith(key), '--service', 'none'))
    expect(r1.code, r1.stderr).toBe(0)
    expect(await mode(join(plain, 'd', 'tool'))).toBe(0o755)
    expect(await mode(join(plain, 'd'))).toBe(0o775)

    const kept = join(work.path, 'modes-kept')
    const r2 = await runInProcess(
      restoreArgs(b.id, repo, kept, ...readWith(key), '--service', 'none', '--keep-special-modes'),
    )
    expect(r2.code, r2.stderr).toBe(0)
    expect(await mode(join(kept, 'd', 'tool'))).toBe(0o4755)
    expect(await mode(join(kept, 'd'))).toBe(0o2775)
  })
})
