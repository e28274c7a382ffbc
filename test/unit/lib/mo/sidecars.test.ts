import {execFileSync} from 'node:child_process'
import {appendFile, readFile, rm, symlink, truncate, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {BrError} from '../../../../src/lib/errors.js'
import {frame} from '../../../../src/lib/mo/framing.js'
import {checkSidecars, readBackupSummary, readVerifiedFile} from '../../../../src/lib/mo/sidecars.js'
import {tempDir} from '../../../helpers/cli.js'
import {CN, FULL_TS, OBJECTS, sha256, writeBackupFolder} from './fixture.js'

const RERUN = 'run the online backup again (--mode online) into an empty folder'

let folder: {cleanup: () => Promise<void>; path: string}
let dir: string
beforeEach(async () => {
  folder = await tempDir('moctl-br-mo-')
  dir = join(folder.path, 'backup')
})
afterEach(() => folder.cleanup())

/** The error checkSidecars throws, checked to be an integrity error with the rerun hint. */
async function failure(): Promise<string> {
  const error = await checkSidecars(dir).catch((error_: unknown) => error_)
  expect(error).toBeInstanceOf(BrError)
  expect(error).toMatchObject({code: 'integrity', exitCode: 3, suggestions: [RERUN]})
  return (error as Error).message
}

describe('checkSidecars', () => {
  it.each([
    ['CRC-framed (legacy DISK backend)', true],
    ['raw (DISK-V2 backend)', false],
  ])('passes a complete BACKUP folder written %s', async (_, framed) => {
    await writeBackupFolder(dir, {framed})
    const progress: Array<{bytesDone: number; file: string; filesDone: number}> = []
    const result = await checkSidecars(dir, {onProgress: (p) => progress.push(p)})
    // 6 files under tae/ + 6 with sidecars (tae_list, tae_sum, hk_data, two configs, mo_meta)
    expect(result).toMatchObject({files: 18, inBase: 0, sizeOnly: 1, viaSidecar: 6, viaTaeList: 5})
    expect(progress).toHaveLength(18)
    expect(progress.at(-1)).toMatchObject({bytesDone: result.bytes, filesDone: 18})
    expect(progress.map((p) => p.file)).toContain('tae/tae_list.sha256')
  })

  it('passes an incremental whose unchanged objects stay in the base', async () => {
    await writeBackupFolder(dir, {inBase: ['018f0000-0000-7000-8000-000000000000_00000']})
    expect(await checkSidecars(dir)).toMatchObject({inBase: 1, viaTaeList: 5})
  })

  it('refuses a missing sidecar', async () => {
    await writeBackupFolder(dir)
    await rm(join(dir, `${CN}.sha256`))
    expect(await failure()).toBe(`${CN} has no sidecar ${CN}.sha256`)
  })

  it('refuses a sidecar of the wrong length', async () => {
    await writeBackupFolder(dir, {framed: false})
    await truncate(join(dir, 'mo_meta.sha256'), 31)
    expect(await failure()).toBe('sidecar mo_meta.sha256 is 31 bytes, not a 32-byte SHA-256')
  })

  it('refuses a hex sidecar (MO writes the raw digest)', async () => {
    await writeBackupFolder(dir)
    await writeFile(join(dir, 'mo_meta.sha256'), sha256(Buffer.from('x')).toString('hex'))
    expect(await failure()).toBe('sidecar mo_meta.sha256 is 64 bytes, not a 32-byte SHA-256')
  })

  it('refuses a file that does not match its sidecar', async () => {
    const {contents} = await writeBackupFolder(dir, {framed: false})
    const content = contents.get('hakeeper/hk_data') ?? Buffer.alloc(0)
    const changed = Buffer.from(content)
    changed[5] ^= 1
    await writeFile(join(dir, 'hakeeper/hk_data'), changed)
    expect(await failure()).toBe(
      `hakeeper/hk_data does not match its sidecar hakeeper/hk_data.sha256 (content sha256 ${sha256(changed).toString('hex')}, sidecar ${sha256(content).toString('hex')})`,
    )
  })

  it('refuses a framed file whose frames are damaged', async () => {
    await writeBackupFolder(dir)
    await appendFile(join(dir, 'tae/tae_sum'), 'x')
    expect(await failure()).toMatch(/^tae\/tae_sum does not match its sidecar tae\/tae_sum.sha256 \(content sha256 /)
  })

  it('refuses an orphan sidecar', async () => {
    await writeBackupFolder(dir)
    await writeFile(join(dir, 'config/gone.toml.sha256'), sha256(Buffer.from('gone')))
    expect(await failure()).toBe('sidecar config/gone.toml.sha256 has no file config/gone.toml')
  })

  it('refuses a symlink', async () => {
    await writeBackupFolder(dir)
    await symlink('/etc/passwd', join(dir, 'tae/018f7a41-0000-7000-8000-000000000000_00000'))
    expect(await failure()).toBe(
      'tae/018f7a41-0000-7000-8000-000000000000_00000 is a symlink: a BACKUP folder holds only regular files and directories',
    )
  })

  it('refuses a FIFO', async () => {
    await writeBackupFolder(dir)
    try {
      execFileSync('mkfifo', [join(dir, 'hakeeper/pipe')])
    } catch {
      return // no mkfifo here: the symlink case covers the rule
    }

    expect(await failure()).toBe(
      'hakeeper/pipe is not a regular file: a BACKUP folder holds only regular files and directories',
    )
  })

  it('refuses a folder the statement did not finish (mo_meta is written last)', async () => {
    await writeBackupFolder(dir)
    await rm(join(dir, 'mo_meta'))
    await rm(join(dir, 'mo_meta.sha256'))
    expect(await failure()).toBe(`mo_meta is missing: the BACKUP statement did not finish writing ${dir}`)
  })

  it('refuses a data file that tae_list does not list', async () => {
    await writeBackupFolder(dir)
    await writeFile(join(dir, 'tae/018f7a41-ffff-7000-8000-000000000000_00000'), frame(Buffer.from('stray')))
    expect(await failure()).toBe(
      'tae/018f7a41-ffff-7000-8000-000000000000_00000 has no sidecar and is not listed in tae/tae_list',
    )
  })

  it('refuses an object tae_list lists that is not there', async () => {
    await writeBackupFolder(dir)
    await rm(join(dir, `tae/${OBJECTS[1]}`))
    expect(await failure()).toBe(`tae/${OBJECTS[1]} is listed in tae/tae_list but missing`)
  })

  it('refuses an object that does not match its SHA-256 in tae_list', async () => {
    const {contents} = await writeBackupFolder(dir)
    const content = Buffer.from(contents.get(`tae/${OBJECTS[0]}`) ?? Buffer.alloc(0))
    content[4999] ^= 1
    await writeFile(join(dir, `tae/${OBJECTS[0]}`), frame(content))
    expect(await failure()).toBe(
      `tae/${OBJECTS[0]} does not match its sha256 in tae/tae_list (content sha256 ${sha256(content).toString('hex')}, listed ${sha256(contents.get(`tae/${OBJECTS[0]}`) ?? Buffer.alloc(0)).toString('hex')})`,
    )
  })

  it('refuses a file listed without a digest whose size is not the listed one', async () => {
    await writeBackupFolder(dir, {framed: false})
    await appendFile(join(dir, 'tae/ckp/meta_1715745404915410000-1_1715745404915410000-1.ckp'), 'more')
    expect(await failure()).toBe(
      'tae/ckp/meta_1715745404915410000-1_1715745404915410000-1.ckp holds 304 bytes of content, tae/tae_list lists 300',
    )
  })

  it('refuses a folder that is not there', async () => {
    const error = await checkSidecars(join(dir, 'nope')).catch((error_: unknown) => error_)
    expect(error).toMatchObject({code: 'integrity'})
    expect((error as Error).message).toMatch(/^backup folder .*nope cannot be read: ENOENT/)
  })

  it('stops at once when aborted (exit 130)', async () => {
    await writeBackupFolder(dir)
    const abort = new AbortController()
    abort.abort()
    await expect(checkSidecars(dir, {signal: abort.signal})).rejects.toMatchObject({
      code: 'interrupted',
      exitCode: 130,
    })
  })
})

describe('readVerifiedFile and readBackupSummary', () => {
  it('read the content through CRC frames, checked against the sidecar', async () => {
    const {contents} = await writeBackupFolder(dir)
    expect(await readVerifiedFile(dir, 'tae/tae_sum')).toEqual(contents.get('tae/tae_sum'))
    expect((await readFile(join(dir, 'tae/tae_sum'))).length).toBeGreaterThan(contents.get('tae/tae_sum')?.length ?? 0)
    expect(await readBackupSummary(dir)).toEqual({
      backupTime: '2024-05-15 11:56:44',
      backupTs: FULL_TS,
      buildInfo: {
        BranchName: 'HEAD',
        BuildTime: '20240515-115000',
        CommitID: '1a2b3c4',
        GoVersion: 'go1.22.3',
        Version: 'v1.2.0',
      },
      formatVersion: '0823',
      size: 5000 + 2044 + 0 + 700 + 300 + 90,
      type: 'full',
    })
  })

  it('refuse a file whose sidecar does not match', async () => {
    await writeBackupFolder(dir, {framed: false})
    await writeFile(join(dir, 'tae/tae_sum'), '2024-05-15 11:56:44,1,1-1,full\n')
    await expect(readBackupSummary(dir)).rejects.toMatchObject({
      code: 'integrity',
      message: expect.stringMatching(/^tae\/tae_sum does not match its sidecar tae\/tae_sum.sha256/),
    })
  })
})
