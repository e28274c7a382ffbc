import {access, mkdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterEach, beforeAll, beforeEach, describe, expect, it} from 'vitest'

import {BrError} from '../../../../src/lib/errors.js'
import {backupStatement, runMoBackup, shownStatement} from '../../../../src/lib/mo/backup-sql.js'
import {type SqlSettings} from '../../../../src/lib/service/types.js'
import {tempDir} from '../../../helpers/cli.js'
import {mariadbAvailable, skipReason, startMariadb} from '../../../helpers/mariadb.js'
import {freePort} from '../../../helpers/net.js'
import {type FakeMo, MO_VERSION, startFakeMo} from './fake-mo.js'
import {FULL_TS, INCREMENTAL_TS, writeBackupFolder} from './fixture.js'

const at = (port: number): SqlSettings => ({deadlineMs: 0, host: '127.0.0.1', password: '', port, user: 'root'})

/** A MariaDB server of this suite's own (never the machine's shared one): not MatrixOne. */
const mariadb = mariadbAvailable()

describe('backupStatement', () => {
  it('writes a full backup with neither TYPE nor TIMESTAMP', () => {
    expect(
      backupStatement({dir: '/var/backups/mo/stage', parallelism: 4, ts: '1715745404000000000', type: 'full'}),
    ).toBe("BACKUP '1715745404000000000' FILESYSTEM '/var/backups/mo/stage' PARALLELISM '4'")
  })

  it('writes an incremental from the backup ts of its base', () => {
    expect(backupStatement({baseTs: FULL_TS, dir: '/b/inc', parallelism: 1, ts: '1', type: 'incremental'})).toBe(
      `BACKUP '1' FILESYSTEM '/b/inc' PARALLELISM '1' TYPE 'incremental' TIMESTAMP '${FULL_TS}'`,
    )
  })

  it('writes BACKUP … S3OPTION with the keys getS3Config reads, leaving out those not set', () => {
    const s3 = {
      accessKeyId: 'AK',
      bucket: 'stage',
      endpoint: 'http://127.0.0.1:9000',
      filepath: 'p/online-1',
      isMinio: true,
      region: 'us-east-1',
      secretAccessKey: "s'ekr3t",
    }
    const statement = backupStatement({baseTs: FULL_TS, parallelism: 4, s3, ts: '1', type: 'incremental'})
    expect(statement).toBe(
      `BACKUP '1' S3OPTION {'endpoint'='http://127.0.0.1:9000', 'bucket'='stage', 'filepath'='p/online-1', 'access_key_id'='AK', 'secret_access_key'='s\\'ekr3t', 'region'='us-east-1', 'is_minio'='true', 'parallelism'='4'} TYPE 'incremental' TIMESTAMP '${FULL_TS}'`,
    )
    expect(shownStatement(statement, s3)).not.toContain('ekr3t')
    expect(shownStatement(statement, s3)).toContain("'secret_access_key'='***'")
    expect(
      backupStatement({
        parallelism: 1,
        s3: {bucket: 'b', filepath: 'f', isMinio: false, roleArn: 'arn:x'},
        ts: '1',
        type: 'full',
      }),
    ).toBe(
      "BACKUP '1' S3OPTION {'bucket'='b', 'filepath'='f', 'is_minio'='false', 'role_arn'='arn:x', 'parallelism'='1'}",
    )
  })

  it('refuses a statement with both a folder and a bucket, or neither (exit 2)', () => {
    const s3 = {bucket: 'b', filepath: 'f', isMinio: false}
    for (const options of [{dir: '/b', s3}, {}]) {
      expect(() => backupStatement({parallelism: 1, type: 'full', ...options})).toThrow(
        expect.objectContaining({code: 'usage', message: 'a BACKUP statement needs one target: a folder or a bucket'}),
      )
    }
  })

  it('escapes single quotes and backslashes as the MySQL scanner reads them', () => {
    expect(backupStatement({dir: String.raw`/b/it's a \ dir`, parallelism: 2, ts: "x'y\\", type: 'full'})).toBe(
      String.raw`BACKUP 'x\'y\\' FILESYSTEM '/b/it\'s a \\ dir' PARALLELISM '2'`,
    )
  })

  it('labels the statement with the current time in nanoseconds by default', () => {
    const before = BigInt(Date.now()) * 1_000_000n
    const [, label] = /^BACKUP '(\d+)' /.exec(backupStatement({dir: '/b', parallelism: 1, type: 'full'})) ?? []
    expect(BigInt(label)).toBeGreaterThanOrEqual(before)
    expect(label).toHaveLength(19)
  })

  it.each([
    [{dir: 'relative/dir', parallelism: 1, type: 'full'}, "backup folder 'relative/dir' is not an absolute path"],
    [{dir: '/b/x\ny', parallelism: 1, type: 'full'}, String.raw`backup folder "/b/x\ny" holds a control character`],
    [{dir: '/b', parallelism: 0, type: 'full'}, 'parallelism 0 is not a whole number from 1 to 65535'],
    [{dir: '/b', parallelism: 1.5, type: 'full'}, 'parallelism 1.5 is not a whole number from 1 to 65535'],
    [{dir: '/b', parallelism: 65_536, type: 'full'}, 'parallelism 65536 is not a whole number from 1 to 65535'],
    [{dir: '/b', parallelism: 1, type: 'incremental'}, 'an incremental online backup needs the backup ts of its base'],
    [{baseTs: FULL_TS, dir: '/b', parallelism: 1, type: 'full'}, 'a full online backup takes no base backup ts'],
    [
      {baseTs: "1'; drop database x; --", dir: '/b', parallelism: 1, type: 'incremental'},
      "'1'; drop database x; --' is not a MatrixOne backup ts",
    ],
    [
      {dir: '/b', parallelism: 1, ts: 'a\0b', type: 'full'},
      String.raw`backup label "a\u0000b" holds a control character`,
    ],
  ] as const)('refuses %j (exit 2)', (options, message) => {
    expect(() => backupStatement(options)).toThrow(expect.objectContaining({code: 'usage', exitCode: 2, message}))
  })
})

describe('runMoBackup', () => {
  let folder: {cleanup: () => Promise<void>; path: string}
  let dir: string
  let closedPort: number
  beforeAll(async () => {
    closedPort = await freePort()
  })

  beforeEach(async () => {
    folder = await tempDir('moctl-br-mo-sql-')
    dir = join(folder.path, 'stage')
  })

  afterEach(() => folder.cleanup())

  it.skipIf(!mariadb)(
    `refuses a server that is not MatrixOne, before writing anything${mariadb ? '' : ` (${skipReason()})`}`,
    async () => {
      const server = await startMariadb()
      const error = await runMoBackup(at(server.port), {dir, parallelism: 1, type: 'full'})
        .catch((error_: unknown) => error_)
        .finally(() => server.cleanup())
      expect(error).toBeInstanceOf(BrError)
      expect(error).toMatchObject({code: 'usage', exitCode: 2})
      expect((error as Error).message).toMatch(
        /^127\.0\.0\.1:\d+ is not MatrixOne \(version\(\) is '[^']*MariaDB[^']*'\): an online backup needs MatrixOne's BACKUP statement$/,
      )
      expect((error as BrError).suggestions).toEqual([
        'use --mode cold to back up the data directory with the service stopped',
      ])
      await expect(access(dir)).rejects.toThrow('ENOENT')
    },
  )

  it('fails as a service error naming host:port when nothing listens (exit 5)', async () => {
    const error = await runMoBackup(at(closedPort), {dir, parallelism: 1, type: 'full'}).catch(
      (error_: unknown) => error_,
    )
    expect(error).toMatchObject({code: 'service', exitCode: 5})
    expect((error as Error).message).toBe(
      `could not connect to MatrixOne on 127.0.0.1:${closedPort}: connect ECONNREFUSED 127.0.0.1:${closedPort}`,
    )
  })

  it('refuses a folder that already holds files, before connecting', async () => {
    await mkdir(dir)
    await writeFile(join(dir, 'mo_meta'), 'old')
    await expect(runMoBackup(at(closedPort), {dir, parallelism: 1, type: 'full'})).rejects.toMatchObject({
      code: 'usage',
      message: `backup folder ${dir} is not empty`,
    })
  })

  describe('against a fake MatrixOne', () => {
    let mo: FakeMo | undefined

    afterEach(async () => {
      await mo?.close()
      mo = undefined
    })

    it('runs BACKUP and returns the backup ts MO recorded in the folder', async () => {
      mo = await startFakeMo(async (statement, connection) => {
        const type = statement.includes("TYPE 'incremental'") ? 'incremental' : 'full'
        const ts = type === 'full' ? FULL_TS : INCREMENTAL_TS
        const target = /FILESYSTEM '([^']+)'/.exec(statement)?.[1] ?? ''
        await writeBackupFolder(target, {taeSum: `2024-05-15 11:56:44,8134,${ts},${type}`})
        connection.writeOk()
      })
      const full = await runMoBackup(at(mo.port), {dir, parallelism: 3, type: 'full'})
      expect(full).toMatchObject({
        backupTime: '2024-05-15 11:56:44',
        backupTs: FULL_TS,
        formatVersion: '0823',
        serverVersion: MO_VERSION,
        size: 8134,
      })
      expect(full.statement).toMatch(new RegExp(`^BACKUP '\\d+' FILESYSTEM '${dir}' PARALLELISM '3'$`))
      expect(mo.statements).toEqual(['select version() as version', full.statement])

      const next = join(folder.path, 'stage-2')
      const incremental = await runMoBackup(at(mo.port), {
        baseTs: full.backupTs,
        dir: next,
        parallelism: 3,
        type: 'incremental',
      })
      expect(incremental.backupTs).toBe(INCREMENTAL_TS)
      expect(incremental.statement).toMatch(/ TYPE 'incremental' TIMESTAMP '1715745404915410000-1'$/)
    })

    it("fails as a service error carrying MO's message (exit 5)", async () => {
      mo = await startFakeMo((_, connection) => {
        connection.writeError({code: 20_101, message: 'internal error: invalid config or metas or fileservice'})
      })
      const error = await runMoBackup(at(mo.port), {dir, parallelism: 1, type: 'full'}).catch(
        (error_: unknown) => error_,
      )
      expect(error).toMatchObject({code: 'service', exitCode: 5})
      expect((error as Error).message).toBe(
        `the BACKUP statement failed on 127.0.0.1:${mo.port}: internal error: invalid config or metas or fileservice`,
      )
    })

    it('fails when MO says done but the folder is not on this host (mo-service runs elsewhere)', async () => {
      mo = await startFakeMo((_, connection) => connection.writeOk())
      const error = await runMoBackup(at(mo.port), {dir, parallelism: 1, type: 'full'}).catch(
        (error_: unknown) => error_,
      )
      expect(error).toMatchObject({
        code: 'service',
        exitCode: 5,
        message: `the BACKUP statement on 127.0.0.1:${mo.port} succeeded, but ${dir} does not appear here: mo-service wrote it on its own host, and this CLI runs on another`,
      })
      expect((error as BrError).suggestions).toEqual([
        `run br on the MatrixOne host (then remove ${dir} there), or let MO write into S3 with --stage s3://BUCKET/PREFIX`,
      ])
    })

    // MO's replies as pkg/frontend sends them (see explainRefusal): errno and message.
    it.each([
      {
        codes: {code: 'usage', exitCode: 2},
        errno: 1105,
        expected: (where: string) =>
          `MatrixOne on ${where} refused BACKUP for user 'dump': only the sys tenant may run it`,
        message: 'internal error: do not have privilege to execute the statement',
        what: 'not the sys tenant',
      },
      {
        codes: {code: 'usage', exitCode: 2},
        errno: 1105,
        expected: (where: string) =>
          `MatrixOne on ${where} refused the incremental's TIMESTAMP '${FULL_TS}': not <physical>-<logical>`,
        message:
          'internal error: panic format of ts must be physical-logical, logical is not an uint32: \ngithub.com/matrixorigin/matrixone/pkg/container/types.StringToTS',
        what: 'a malformed TIMESTAMP',
      },
      {
        codes: {code: 'service', exitCode: 5},
        errno: 1317,
        expected: (where: string) =>
          `the BACKUP statement on ${where} was killed (query interrupted): nothing was published`,
        message: 'query interrupted',
        what: 'a killed query',
      },
    ])('says what MO meant when it refuses: $what', async ({codes, errno, expected, message}) => {
      mo = await startFakeMo((statement, connection) => {
        if (statement.startsWith('BACKUP')) connection.writeError({code: errno, message})
      })
      const error = await runMoBackup(
        {...at(mo.port), user: 'dump'},
        {baseTs: FULL_TS, dir, parallelism: 1, type: 'incremental'},
      ).catch((error_: unknown) => error_)
      expect(error).toBeInstanceOf(BrError)
      expect(error).toMatchObject({...codes, message: expected(`127.0.0.1:${mo.port}`)})
      expect((error as BrError).suggestions).toHaveLength(1)
      await expect(access(dir)).rejects.toThrow('ENOENT')
    })

    it('says so when the connection drops while BACKUP runs (KILL <connection>, mo-service stopped)', async () => {
      mo = await startFakeMo((statement, connection) => {
        if (statement.startsWith('BACKUP')) (connection as unknown as {stream: {destroy(): void}}).stream.destroy()
      })
      await expect(runMoBackup(at(mo.port), {dir, parallelism: 1, type: 'full'})).rejects.toMatchObject({
        code: 'service',
        exitCode: 5,
        message: `the connection to 127.0.0.1:${mo.port} was lost while BACKUP ran (killed, or mo-service stopped): nothing was published`,
      })
    })

    it('fails when MO records no backup ts', async () => {
      mo = await startFakeMo(async (_, connection) => {
        await writeBackupFolder(dir, {taeSum: '2023-08-23 10:00:00,8134'})
        connection.writeOk()
      })
      await expect(runMoBackup(at(mo.port), {dir, parallelism: 1, type: 'full'})).rejects.toMatchObject({
        code: 'service',
        message: `127.0.0.1:${mo.port} (${MO_VERSION}) recorded no backup ts in ${dir}/tae/tae_sum: it is too old for online backups`,
      })
    })

    it('kills the statement and stops at once when aborted (exit 130)', async () => {
      mo = await startFakeMo((statement, connection) => {
        if (statement.startsWith('kill query')) connection.writeOk()
        // BACKUP: never answers, like a long backup
      })
      const abort = new AbortController()
      setTimeout(() => abort.abort(), 300)
      const started = Date.now()
      await expect(
        runMoBackup(at(mo.port), {dir, parallelism: 1, signal: abort.signal, type: 'full'}),
      ).rejects.toMatchObject({code: 'interrupted', exitCode: 130})
      expect(Date.now() - started).toBeLessThan(3000)
      expect(mo.statements.at(-1)).toMatch(/^kill query \d+$/)
    })

    it('gives up after timeoutMs when asked to', async () => {
      mo = await startFakeMo((statement, connection) => {
        if (statement.startsWith('kill query')) connection.writeOk()
      })
      await expect(runMoBackup(at(mo.port), {dir, parallelism: 1, timeoutMs: 300, type: 'full'})).rejects.toMatchObject(
        {code: 'service', message: `the BACKUP statement did not finish within 300ms on 127.0.0.1:${mo.port}`},
      )
      expect(mo.statements.at(-1)).toMatch(/^kill query \d+$/)
    })
  })
})
