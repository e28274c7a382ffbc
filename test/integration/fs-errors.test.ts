/**
 * Every filesystem error on a path the user gave is a sentence with a way out (issue 8, section
 * 4): the path, what failed, a Hint, and the exit code of the table (2 for a path that is wrong or
 * cannot be written, 1 for a filesystem that fills up during the run, saying how much was needed
 * and how much is free). chmod does not stop root, so read-only means a tmpfs remounted ro, and
 * full means a small tmpfs; both need root, as CI has.
 */
import {mkdir, readdir, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, beforeEach, describe, expect, it} from 'vitest'

import {backupArgs, markingService, NO_SQL, restoreArgs} from '../helpers/args.js'
import {runInProcess, tempDir, type TempDir} from '../helpers/cli.js'
import {makeSmallDataDir} from '../helpers/fixtures.js'
import {skipNote} from '../helpers/needs.js'
import {canMount, NOT_ROOT, tmpfsMounts} from '../helpers/tmpfs.js'

const root = canMount()

let tmp: TempDir
let dataDir: string
let marker: string
const mounts = tmpfsMounts()

const service = () => markingService(marker)

const tmpfs = (dir: string, size: string) => mounts.mount(dir, size)

beforeAll(async () => {
  tmp = await tempDir()
  dataDir = join(tmp.path, 'mo-data')
  await makeSmallDataDir(dataDir)
})

// A marker of its own per test: one test's stop never fails another's check.
let markers = 0
beforeEach(() => {
  marker = join(tmp.path, `STOPPED-${++markers}`)
})

afterAll(async () => {
  await mounts.unmountAll()
  await tmp?.cleanup()
})

describe('the repository', () => {
  it.skipIf(!root)(
    `read-only: exit 2 naming it, before the service is stopped${skipNote(root, NOT_ROOT)}`,
    async () => {
      const fs = await tmpfs(join(tmp.path, 'ro-repo'), '4m')
      const repo = join(fs, 'repo')
      const first = await runInProcess(backupArgs(repo, dataDir, '--no-encrypt', ...NO_SQL))
      expect(first.code, first.stderr).toBe(0)
      await mounts.readOnly(fs)
      const r = await runInProcess(backupArgs(repo, dataDir, '--no-encrypt', ...service()))
      expect(r.code).toBe(2)
      expect(r.stderr).toMatch(
        new RegExp(`^Error: repository ${repo} is on a read-only filesystem \\(\\w+ ${repo}/`, 'm'),
      )
      expect(r.stderr).toContain('Hint: mount it read-write, or pass --path with another one')
      expect(r.stderr).not.toContain('EROFS:')
      await expect(stat(marker)).rejects.toThrow(/ENOENT/)
    },
  )

  it.skipIf(!root)(
    `full during the pack: exit 1, how much was needed and how much is free, nothing left${skipNote(root, NOT_ROOT)}`,
    async () => {
      const fs = await tmpfs(join(tmp.path, 'full-repo'), '256k')
      const repo = join(fs, 'repo')
      const r = await runInProcess(backupArgs(repo, dataDir, '--no-encrypt', ...NO_SQL))
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(
        new RegExp(
          `^Error: no space left on repository ${repo} \\(write\\): needed [\\d.]+ [KM]iB \\(the files to pack, before compression\\), [\\d.]+ [KM]?i?B free$`,
          'm',
        ),
      )
      expect(r.stderr).toContain(
        'Hint: free some space there, or pass --path with another one on a filesystem with room',
      )
      // Rolled back: no half-written backup, no lock.
      expect(await readdir(join(repo, 'backups'))).toEqual([])
      expect(await readdir(repo)).not.toContain('lock.json')
    },
  )

  it('reached through a file (ENOTDIR): exit 2 naming it', async () => {
    const file = join(tmp.path, 'plain-file')
    await writeFile(file, 'x')
    const r = await runInProcess(['br', 'list', '--path', join(file, 'repo')])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/^Error: repository .*plain-file\/repo: a part of the path is a file, not a directory/m)
    const b = await runInProcess(backupArgs(join(file, 'repo'), dataDir, '--no-encrypt', ...service()))
    expect(b.code).toBe(2)
    expect(b.stderr).toMatch(/^Error: repository .*plain-file\/repo: a part of the path is a file, not a directory/m)
    await expect(stat(marker)).rejects.toThrow(/ENOENT/)
  })
})

describe('restore targets and staging', () => {
  let repo: string
  let id: string
  beforeAll(async () => {
    repo = join(tmp.path, 'restore-repo')
    // Many small files: few bytes, but a block each on the target's filesystem.
    const many = join(tmp.path, 'many-files')
    for (let i = 0; i < 200; i++) {
      await mkdir(join(many, `d${i % 10}`), {recursive: true})
      await writeFile(join(many, `d${i % 10}`, `f${i}`), `file ${i}\n`)
    }

    const b = await runInProcess(backupArgs(repo, many, '--no-encrypt', ...NO_SQL))
    expect(b.code, b.stderr).toBe(0)
    id = b.stdout.trim()
  })

  it.skipIf(!root)(
    `a target on a read-only filesystem: exit 2 naming the directory that holds it${skipNote(root, NOT_ROOT)}`,
    async () => {
      const fs = await tmpfs(join(tmp.path, 'ro-target'), '1m')
      await mounts.readOnly(fs)
      const target = join(fs, 'mo-data')
      const r = await runInProcess(restoreArgs(id, repo, target, ...service()))
      expect(r.code).toBe(2)
      expect(r.stderr).toMatch(
        new RegExp(`^Error: the directory that holds the restore target ${fs} is on a read-only filesystem`, 'm'),
      )
      expect(r.stderr).toContain('Hint: mount it read-write, or pass --data-dir with another one')
      await expect(stat(marker)).rejects.toThrow(/ENOENT/)
    },
  )

  it.skipIf(!root)(
    `staging that fills up while extracting: exit 1, needed and free, staging removed${skipNote(root, NOT_ROOT)}`,
    async () => {
      // The files' bytes fit (the check before extraction passes), their blocks do not.
      const fs = await tmpfs(join(tmp.path, 'full-target'), '200k')
      const target = join(fs, 'mo-data')
      const r = await runInProcess(restoreArgs(id, repo, target, ...service()))
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(
        new RegExp(
          `^Error: no space left on staging directory ${fs}/\\.mo-data\\.restore-${id}-\\w+.*: needed [\\d.]+ [KM]?i?B \\(the backup's files\\), [\\d.]+ [KM]?i?B free$`,
          'm',
        ),
      )
      expect(r.stderr).toContain(
        'Hint: free some space there, or pass --data-dir with another one on a filesystem with room',
      )
      expect(await readdir(fs)).toEqual([])
      await expect(stat(marker)).rejects.toThrow(/ENOENT/)
    },
  )
})
