import {mkdir, readdir, readFile, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {setTimeout} from 'node:timers/promises'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import type {BackupRecord} from '../../../../src/lib/repo/types.js'

import {backendFor} from '../../../../src/lib/repo/backend-for.js'
import {openRepository} from '../../../../src/lib/repo/repository.js'
import {S3Backend} from '../../../../src/lib/repo/s3.js'
import {tempDir} from '../../../helpers/cli.js'

let tmp: {cleanup: () => Promise<void>; path: string}
beforeEach(async () => {
  tmp = await tempDir()
})
afterEach(async () => tmp.cleanup())

const HASH = 'a'.repeat(64)
function record(id: string): BackupRecord {
  return {
    archive: {compression: 'zstd', file: 'data.tar.zst.age', level: 3, sha256: HASH, size: 10},
    backupTs: '2026-11-25T00:00:00.000Z',
    base: null,
    chain: [id],
    completedAt: '2026-11-25T00:00:01.000Z',
    counts: {dirs: 1, files: 2, symlinks: 0},
    createdAt: '2026-11-25T00:00:00.000Z',
    durationMs: 1000,
    encryption: {passphrase: false, recipients: [], type: 'recipients'},
    format: 1,
    id,
    manifest: {file: 'manifest.age', plainSha256: HASH, sha256: HASH, size: 5},
    mode: 'cold',
    sizes: {archived: 100, total: 100},
    source: {dataDir: '/d', host: 'h', serverVersion: null},
    tool: {name: 't', version: '0'},
    type: 'full',
  }
}

async function publish(repoPath: string, id: string): Promise<void> {
  const repo = await openRepository(repoPath)
  await repo.writeObject(id, 'data.tar.zst.age', Buffer.from('0123456789'))
  await repo.publishRecord(record(id))
}

describe('openRepository', () => {
  it('names a missing repository, and one that is not a repository', async () => {
    await expect(openRepository(join(tmp.path, 'nope'))).rejects.toMatchObject({
      code: 'usage',
      message: `repository ${join(tmp.path, 'nope')} does not exist`,
    })
    await writeFile(join(tmp.path, 'x'), 'x')
    await expect(openRepository(tmp.path)).rejects.toThrow('is not a moctl br repository')
    await expect(openRepository(tmp.path, {create: true})).rejects.toThrow('is not empty')
  })

  it('creates a repository with its format file, and opens it again', async () => {
    const path = join(tmp.path, 'new', 'repo')
    await openRepository(path, {create: true})
    expect(JSON.parse(await readFile(join(path, 'moctl-br.json'), 'utf8'))).toMatchObject({format: 1})
    expect((await (await openRepository(path)).listBackups()).length).toBe(0)
  })

  it('takes an s3:// location as an S3 repository, never as a directory; a malformed one is exit 2', async () => {
    expect(backendFor('s3://bucket/backups')).toBeInstanceOf(S3Backend)
    expect(() => backendFor('s3://bucket/a/../b')).toThrow(
      expect.objectContaining({exitCode: 2, message: 'repository s3://bucket/a/../b is not a valid S3 location'}),
    )
    // A relative path "s3:/bucket/backups" would have been made under the working directory.
    await expect(stat('s3:')).rejects.toMatchObject({code: 'ENOENT'})
  })

  it('refuses a format it does not know', async () => {
    await writeFile(join(tmp.path, 'moctl-br.json'), JSON.stringify({createdAt: '', format: 99, tool: 'x'}))
    await expect(openRepository(tmp.path)).rejects.toThrow('has format 99')
  })
})

describe('Repository', () => {
  it('lists complete backups only, oldest first, and finds them by unique prefix', async () => {
    const path = join(tmp.path, 'r')
    await openRepository(path, {create: true})
    await publish(path, '0193aaaa-0000-7000-8000-000000000002')
    await publish(path, '0193aaaa-0000-7000-8000-000000000001')
    await mkdir(join(path, 'backups', '0193aaaa-0000-7000-8000-000000000003'))
    const repo = await openRepository(path)
    expect((await repo.listBackups()).map((r) => r.id.slice(-1))).toEqual(['1', '2'])
    expect((await repo.listIncomplete()).map((r) => r.id.slice(-1))).toEqual(['3'])
    expect((await repo.getBackup('0193aaaa-0000-7000-8000-000000000002')).id.slice(-1)).toBe('2')
    await expect(repo.getBackup('0193aaaa')).rejects.toThrow('is ambiguous')
    await expect(repo.getBackup('0193aaaa-0000-7000-8000-000000000003')).rejects.toThrow('not found')
  })

  it('deletes the record first, so an interrupted delete leaves an incomplete backup, never a listed one', async () => {
    const path = join(tmp.path, 'r')
    await openRepository(path, {create: true})
    const id = '0193aaaa-0000-7000-8000-000000000001'
    await publish(path, id)
    const repo = await openRepository(path)
    await repo.backend.remove(`backups/${id}/backup.json`)
    expect(await repo.listBackups()).toEqual([])
    expect((await repo.listIncomplete()).map((r) => r.id)).toEqual([id])
    await repo.deleteBackup(id)
    expect(await readdir(join(path, 'backups'))).toEqual([])
  })

  it('names a damaged record as damaged, without breaking the listing of the others', async () => {
    const path = join(tmp.path, 'r')
    await openRepository(path, {create: true})
    const id = '0193aaaa-0000-7000-8000-000000000001'
    await publish(path, id)
    const file = join(path, 'backups', id, 'backup.json')
    const json = JSON.parse(await readFile(file, 'utf8'))
    json.archive.sha256 = 'nothex'
    await writeFile(file, JSON.stringify(json))
    const scan = await (await openRepository(path)).scanBackups()
    expect(scan.records).toEqual([])
    expect(scan.damaged).toEqual([{id, reason: `backup ${id}: backup.json has a bad or missing archive.sha256`}])
    await expect((await openRepository(path)).getBackup(id)).rejects.toMatchObject({code: 'integrity'})
    await writeFile(file, '{')
    await expect((await openRepository(path)).getBackup(id)).rejects.toThrow('is not valid JSON')
  })

  it('an aborted writer leaves no object and no temp file behind', async () => {
    const path = join(tmp.path, 'r')
    const repo = await openRepository(path, {create: true})
    const writer = await repo.openWriter('x', 'data.tar.zst.age')
    writer.stream.write(Buffer.alloc(1000))
    await writer.abort()
    expect(await readdir(join(path, 'backups', 'x'))).toEqual([])
    const ok = await repo.openWriter('x', 'data.tar.zst.age')
    ok.stream.write(Buffer.alloc(1000))
    await ok.commit()
    expect(await readdir(join(path, 'backups', 'x'))).toEqual(['data.tar.zst.age'])
    expect((await repo.objectInfo('x', 'data.tar.zst.age'))?.size).toBe(1000)
  })

  it("a save that fails before it reads (a file where the backup's folder goes) fails the writer's pipeline at once, not a hang", async () => {
    const path = join(tmp.path, 'r')
    const repo = await openRepository(path, {create: true})
    await mkdir(join(path, 'backups'))
    await writeFile(join(path, 'backups', 'x'), 'in the way')
    const writer = await repo.openWriter('x', 'data.tar.zst.age')
    // The writer starts piping later (writeArchive first sets up its stages): the save has failed by then.
    await setTimeout(50)
    // 64 MiB: far more than the stream buffers, so a writer nobody reads from would wait forever.
    const source = Readable.from(
      (function* () {
        for (let i = 0; i < 64; i++) yield Buffer.alloc(1024 * 1024)
      })(),
    )
    const started = Date.now()
    const piped = await Promise.race([
      pipeline(source, writer.stream).then(
        () => 'piped',
        (error: Error) => error,
      ),
      setTimeout(5000, 'hung'),
    ])
    expect(piped).toBeInstanceOf(Error)
    expect((piped as NodeJS.ErrnoException).code).toMatch(/^(ENOTDIR|EEXIST)$/)
    expect((piped as Error).message).toContain(join(path, 'backups', 'x'))
    expect(Date.now() - started).toBeLessThan(2000)
    await expect(writer.commit()).rejects.toMatchObject({code: (piped as NodeJS.ErrnoException).code})
    expect(await readFile(join(path, 'backups', 'x'), 'utf8')).toBe('in the way')
  })

  it('refuses keys that climb out of the repository', async () => {
    const repo = await openRepository(join(tmp.path, 'r'), {create: true})
    await expect(repo.readObject('..', '../../etc/passwd')).rejects.toThrow('escapes the repository')
  })
})

describe('the excluded field of backup.json', () => {
  const id = '01930000-0000-7000-8000-000000000001'

  it('reads records without it (older ones) and with a list of paths', async () => {
    const path = join(tmp.path, 'repo')
    const repo = await openRepository(path, {create: true})
    await repo.publishRecord(record(id))
    expect((await repo.getBackup(id)).excluded).toBeUndefined()
    await repo.publishRecord({...record(id), excluded: ['shared-cache', 'tmp', 'etl']})
    expect((await repo.getBackup(id)).excluded).toEqual(['shared-cache', 'tmp', 'etl'])
  })

  it('refuses a record whose excluded is not a list of strings (integrity)', async () => {
    const path = join(tmp.path, 'repo')
    const repo = await openRepository(path, {create: true})
    await repo.publishRecord({...record(id), excluded: 'tmp' as unknown as string[]})
    await expect(repo.getBackup(id)).rejects.toMatchObject({
      code: 'integrity',
      message: `backup ${id}: backup.json has a bad or missing excluded`,
    })
  })
})

describe('Repository.probeWrite', () => {
  it('writes under backups/<id>/ and leaves nothing behind', async () => {
    const path = join(tmp.path, 'repo')
    const repo = await openRepository(path, {create: true})
    await repo.probeWrite('01930000-0000-7000-8000-000000000002')
    expect(await readdir(join(path, 'backups'))).toEqual([])
  })

  it('fails as the write fails: a file where backups/ belongs', async () => {
    const path = join(tmp.path, 'repo')
    const repo = await openRepository(path, {create: true})
    await writeFile(join(path, 'backups'), 'not a directory')
    await expect(repo.probeWrite('01930000-0000-7000-8000-000000000003')).rejects.toMatchObject({code: 'ENOTDIR'})
  })
})
