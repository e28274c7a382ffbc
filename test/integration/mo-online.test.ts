import {createConnection} from 'mysql2/promise'
/**
 * The online source against a real MatrixOne: a full `BACKUP` into a fresh folder, its checksums
 * checked, every file mapped to where `mo_br restore` would put it, then an incremental from the
 * full's backup ts.
 *
 * Runs only when MO_TEST_HOST and MO_TEST_PORT name a MatrixOne, and only on the MatrixOne host
 * itself: the server writes the folder on its own filesystem and we read it back. MO_TEST_USER
 * and MO_TEST_PASSWORD default to MatrixOne's first-install `root` / `111`. The folders go under
 * MO_TEST_BACKUP_DIR (default: the OS temp dir), which mo-service must be able to write.
 * With MO_TEST_INSTALL (the MatrixOne install dir: etc/launch, mo-service), the full backup is also
 * laid out into a scratch data dir as that install reads it (its launch configs: SHARED's dir and
 * backend, hk_data's place), converting framing if needed, and every file is checked against
 * tae_list in the form the install reads; the running MO's own data is never touched.
 */
import {chmod, mkdir, readdir, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {Manifest} from '../../src/lib/archive/types.js'

import {runMoBackup} from '../../src/lib/mo/backup-sql.js'
import {readTargetConfig, targetLayout} from '../../src/lib/mo/config.js'
import {digestBytes} from '../../src/lib/mo/framing.js'
import {classifyOnlineFile, restorePath} from '../../src/lib/mo/layout.js'
import {parseTaeList, TAE_LIST, TS_PATTERN} from '../../src/lib/mo/meta.js'
import {checkSidecars, readBackupSummary, readVerifiedFile} from '../../src/lib/mo/sidecars.js'
import {layOutOnline} from '../../src/lib/restore/online-layout.js'
import {type SqlSettings} from '../../src/lib/service/types.js'
import {tempDir, type TempDir} from '../helpers/cli.js'

const {MO_TEST_BACKUP_DIR, MO_TEST_HOST, MO_TEST_PASSWORD, MO_TEST_PORT, MO_TEST_USER} = process.env
const configured = Boolean(MO_TEST_HOST && MO_TEST_PORT)
const DATABASE = 'moctl_br_online_test'

/** Every regular file of a folder, '/'-separated and relative to it. */
async function filesOf(dir: string): Promise<string[]> {
  const entries = await readdir(dir, {recursive: true, withFileTypes: true})
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1))
    .sort()
}

describe.skipIf(!configured)(
  'online backup against a real MatrixOne (set MO_TEST_HOST and MO_TEST_PORT to run, on the MatrixOne host)',
  () => {
    const sql: SqlSettings = {
      deadlineMs: 60_000,
      host: MO_TEST_HOST ?? '127.0.0.1',
      password: MO_TEST_PASSWORD ?? '111',
      port: Number(MO_TEST_PORT ?? 6001),
      user: MO_TEST_USER ?? 'root',
    }
    let tmp: TempDir | undefined
    let folder: string
    let fullTs: string

    const run = async (statements: string[]) => {
      const connection = await createConnection({...sql, multipleStatements: false})
      try {
        for (const statement of statements) await connection.query(statement)
      } finally {
        await connection.end()
      }
    }

    beforeAll(async () => {
      if (MO_TEST_BACKUP_DIR) await mkdir(MO_TEST_BACKUP_DIR, {recursive: true})
      tmp = await tempDir('moctl-br-mo-', MO_TEST_BACKUP_DIR)
      folder = tmp.path
      // mo-service may run as another user: it creates the backup folders inside this one
      await chmod(folder, 0o777)
      await run([
        `drop database if exists ${DATABASE}`,
        `create database ${DATABASE}`,
        `create table ${DATABASE}.t (id int primary key, note varchar(64))`,
        `insert into ${DATABASE}.t values (1, 'before the full backup'), (2, 'also before')`,
      ])
    })

    afterAll(async () => {
      await run([`drop database if exists ${DATABASE}`]).catch(() => {})
      await tmp?.cleanup().catch(() => {})
    })

    it('takes a full backup whose files check out and map onto mo-data', async () => {
      const dir = join(folder, 'full')
      const result = await runMoBackup(sql, {dir, parallelism: 2, type: 'full'})
      expect(result.serverVersion).toContain('MatrixOne')
      expect(result.backupTs).toMatch(TS_PATTERN)
      expect(result.statement).not.toContain('TYPE')
      fullTs = result.backupTs

      const check = await checkSidecars(dir)
      expect(check.files).toBeGreaterThan(0)
      expect(check.viaSidecar).toBeGreaterThanOrEqual(5) // mo_meta, tae_list, tae_sum, hk_data, configs
      expect(check.viaTaeList + check.sizeOnly).toBeGreaterThan(0)

      const files = await filesOf(dir)
      const targets = files.map((rel) => restorePath(rel))
      expect(files.filter((rel) => classifyOnlineFile(rel) === 'unknown')).toEqual([])
      expect(targets).toContain('local/hk_data')
      expect(targets.some((target) => target?.startsWith('shared/ckp/'))).toBe(true)
      expect(targets.filter((target) => target?.startsWith('shared/')).length).toBeGreaterThan(1)
      expect((await readBackupSummary(dir)).formatVersion).not.toBe('')
      await writeFile(join(folder, 'full-tae_list'), await readVerifiedFile(dir, TAE_LIST))
    })

    it.runIf(Boolean(process.env.MO_TEST_INSTALL))(
      "restores the full backup into a scratch data dir as the install's configs read it (MO_TEST_INSTALL)",
      async () => {
        const install = process.env.MO_TEST_INSTALL ?? ''
        const dir = join(folder, 'full')
        const dataDir = join(folder, 'restored', 'mo-data')
        const config = await readTargetConfig({dataDir, moConfig: join(install, 'etc', 'launch')})
        const layout = targetLayout(config, dataDir)
        const files = await filesOf(dir)
        const entries = await Promise.all(
          files.map(async (path) => ({
            mode: 0o644,
            mtimeMs: 0,
            path,
            size: (await stat(join(dir, path))).size,
            type: 'file' as const,
          })),
        )
        const manifest = {entries} as unknown as Manifest
        await mkdir(join(folder, 'restored'), {recursive: true})
        const result = await layOutOnline(dir, dataDir, manifest, {layout})
        expect(result.moved + result.converted).toBeGreaterThan(1)
        const list = parseTaeList((await readFile(join(folder, 'full-tae_list'))).toString('utf8'))
        for (const entry of list.filter((e) => e.needCopy && e.sha256)) {
          const bytes = await readFile(join(dataDir, layout.shared, entry.path))
          const digest = digestBytes(bytes)
          const content = layout.sharedFramed ? digest.framed : digest.raw
          expect([entry.path, content?.sha256.toString('hex')]).toEqual([entry.path, entry.sha256])
        }
      },
    )

    it('takes an incremental from the full backup ts', async () => {
      expect(fullTs, 'the full backup ran first').toBeDefined()
      await run([`insert into ${DATABASE}.t values (3, 'after the full backup')`])
      const dir = join(folder, 'incremental')
      const result = await runMoBackup(sql, {baseTs: fullTs, dir, parallelism: 2, type: 'incremental'})
      expect(result.backupTs).toMatch(TS_PATTERN)
      expect(BigInt(result.backupTs.split('-')[0])).toBeGreaterThanOrEqual(BigInt(fullTs.split('-')[0]))
      expect(result.statement).toContain(`TYPE 'incremental' TIMESTAMP '${fullTs}'`)

      const check = await checkSidecars(dir)
      expect(check.files).toBeGreaterThan(0)
      expect((await readBackupSummary(dir)).type).toBe('incremental')
      for (const rel of await filesOf(dir)) expect(classifyOnlineFile(rel), rel).not.toBe('unknown')
    })

    it('refuses to back up into a folder that is not empty', async () => {
      await expect(runMoBackup(sql, {dir: join(folder, 'full'), parallelism: 1, type: 'full'})).rejects.toMatchObject({
        code: 'usage',
      })
      await rm(join(folder, 'never'), {force: true, recursive: true})
    })
  },
)
