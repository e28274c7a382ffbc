/**
 * A repository writer puts special files where the repository expects regular ones: a FIFO (made
 * with the real mkfifo(1)) as lock.json, moctl-br.json, backup.json, manifest.age and the archive,
 * a directory as manifest.age, and a sparse 1 GiB manifest.age. Every command must end at once
 * with a clear error (the per-command timeout proves that none waits for a FIFO's writer), and the
 * 1 GiB manifest must be refused before it is read into memory (peak RSS measured by time(1)).
 */
import {execFile} from 'node:child_process'
import {cp, mkdir, rm, truncate} from 'node:fs/promises'
import {join} from 'node:path'
import {promisify} from 'node:util'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {backupArgs, encryptTo, readWith, type SuiteKey, suiteKey} from '../helpers/args.js'
import {RUN, runCli, runInProcess, tempDir, type TempDir} from '../helpers/cli.js'
import {makeSmallDataDir} from '../helpers/fixtures.js'

const run = promisify(execFile)
let tmp: TempDir
let pristine: string
let key: SuiteKey
let id: string
/**
 * Every command here must end within this: a FIFO read would hang forever. Generous, so that a
 * loaded machine (a node start-up of several seconds) never passes for a hang; 20 s did not.
 */
const timeoutMs = 90_000

beforeAll(async () => {
  tmp = await tempDir('moctl-br-special-')
  const dataDir = join(tmp.path, 'mo-data')
  await makeSmallDataDir(dataDir)
  key = await suiteKey(tmp.path)
  pristine = join(tmp.path, 'pristine')
  const backup = await runInProcess(backupArgs(pristine, dataDir, ...encryptTo(key)))
  expect(backup.code, backup.stderr).toBe(0)
  id = backup.stdout.trim()
})
afterAll(async () => tmp?.cleanup())

/** A copy of the repository with `key` replaced by a FIFO. */
async function repoWithFifo(name: string, key: string): Promise<string> {
  const repo = join(tmp.path, name)
  await cp(pristine, repo, {recursive: true})
  const path = join(repo, key.replace('<id>', id))
  await rm(path, {force: true})
  await run('mkfifo', [path])
  return repo
}

const cli = (args: string[]) => runCli(args, {timeoutMs})

describe('special files in the repository never make a command hang', () => {
  it('lock.json as a FIFO: a backup fails at once with exit 4, naming the damaged lock', async () => {
    const repo = await repoWithFifo('fifo-lock', 'lock.json')
    const result = await cli(backupArgs(repo, join(tmp.path, 'mo-data'), '--no-encrypt'))
    expect(result.signal).toBeNull()
    expect(result.code, result.stderr).toBe(4)
    expect(result.stderr).toContain('has a damaged lock: repository object lock.json is a FIFO, not a regular file')
  })

  it('moctl-br.json as a FIFO: list fails with exit 3', async () => {
    const repo = await repoWithFifo('fifo-info', 'moctl-br.json')
    const result = await cli(['br', 'list', '--path', repo])
    expect(result.signal).toBeNull()
    expect(result.code, result.stderr).toBe(3)
    expect(result.stderr).toContain('moctl-br.json')
  })

  it('backup.json as a FIFO: the backup is listed as damaged, and list does not hang', async () => {
    const repo = await repoWithFifo('fifo-record', 'backups/<id>/backup.json')
    const result = await cli(['br', 'list', '--path', repo, '--json'])
    expect(result.signal).toBeNull()
    expect(result.code, result.stderr).toBe(0)
    expect(JSON.parse(result.stdout)).toEqual([{damaged: expect.stringContaining('is a FIFO, not a regular file'), id}])
  })

  it('manifest.age as a FIFO or a directory: verify fails with exit 3 naming it', async () => {
    const repo = await repoWithFifo('fifo-manifest', 'backups/<id>/manifest.age')
    const result = await cli(['br', 'verify', id, '--path', repo, ...readWith(key)])
    expect(result.signal).toBeNull()
    expect(result.code, result.stderr).toBe(3)
    expect(result.stderr).toContain(`backups/${id}/manifest.age is a FIFO, not a regular file`)

    const manifest = join(repo, 'backups', id, 'manifest.age')
    await rm(manifest)
    await mkdir(manifest)
    const dir = await cli(['br', 'verify', id, '--path', repo, ...readWith(key)])
    expect(dir.code, dir.stderr).toBe(3)
    expect(dir.stderr).toContain('manifest.age is a directory, not a regular file')
  })

  it('the archive as a FIFO: verify --quick, verify and restore fail with exit 3, without hanging', async () => {
    const repo = await repoWithFifo('fifo-archive', 'backups/<id>/data.tar.zst.age')
    for (const args of [
      ['verify', id, '--quick'],
      ['verify', id, ...readWith(key)],
      ['restore', id, ...readWith(key), '--data-dir', join(tmp.path, 'restored-fifo')],
    ]) {
      const result = await cli(['br', ...args, '--path', repo])
      expect(result.signal, args.join(' ')).toBeNull()
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(3)
      // The record check (size of a regular file) or the read (fstat of the opened file) refuses it.
      expect(result.stderr).toMatch(/data\.tar\.zst\.age (is a FIFO, not a regular file|is missing)/)
    }
  })

  it('a sparse 1 GiB manifest.age is refused unread: exit 3, and the process never grows by 1 GiB', async () => {
    const repo = join(tmp.path, 'huge-manifest')
    await cp(pristine, repo, {recursive: true})
    await truncate(join(repo, 'backups', id, 'manifest.age'), 1024 ** 3)
    const {code, stderr} = await run('/usr/bin/time', [
      '-f',
      'maxrss-kib=%M',
      process.execPath,
      RUN,
      'br',
      'verify',
      id,
      '--path',
      repo,
      ...readWith(key),
    ]).then(
      (r) => ({code: 0, stderr: r.stderr}),
      (error: {code: number; stderr: string}) => ({code: error.code, stderr: error.stderr}),
    )
    expect(code, stderr).toBe(3)
    // Refused before a byte is read: by its size against the record, or by the read bound (fs.test.ts).
    expect(stderr).toMatch(/manifest\.age is (1\.0 GiB, more than the|1073741824 bytes, its record says)/)
    const rssKib = Number(/maxrss-kib=(\d+)/.exec(stderr)![1])
    expect(rssKib).toBeLessThan(400 * 1024)
  })
})
