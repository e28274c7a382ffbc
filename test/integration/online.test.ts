/**
 * `br backup --mode online` (in process, runInProcess), against a loopback server that plays MatrixOne (the
 * MySQL protocol, mysql2's server side): it answers `select version()` as MO does and, for
 * `BACKUP … FILESYSTEM '<dir>'`, writes a folder shaped like MO's (test/unit/lib/mo/fixture.ts)
 * into that dir. A full, then an incremental on it (MO's TYPE 'incremental' TIMESTAMP), then a
 * restore of the incremental, laid out as mo_br restore does. The real MO is in mo-online.test.ts.
 */
import {mkdir, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {defaultParallelism} from '../../src/lib/archive/compress.js'
import {backupArgs, NO_SQL, restoreArgs} from '../helpers/args.js'
import {runInProcess, tempDir} from '../helpers/cli.js'
import {treeHashes} from '../helpers/tree.js'
import {type FakeMo, startFakeMo} from '../unit/lib/mo/fake-mo.js'
import {FULL_TS, INCREMENTAL_TS, OBJECTS, writeBackupFolder, writeLaunchConfig} from '../unit/lib/mo/fixture.js'

const NEW_OBJECT = '018f7a99-0000-7000-8000-000000000001_00000'
/** the id of a run killed on 2024-05-15T14:29:38Z (a UUIDv7: its first 48 bits are that millisecond) */
const DEAD_RUN = '018f7ca8-a450-7000-8000-000000000000'

let tmp: {cleanup: () => Promise<void>; path: string}
let mo: FakeMo
let dataDir: string
let repo: string
/** what the fake does with the next BACKUP folder after writing it */
let damage: ((dir: string) => Promise<void>) | undefined

beforeAll(async () => {
  tmp = await tempDir()
  dataDir = join(tmp.path, 'mo-data')
  repo = join(tmp.path, 'repo')
  // MO's own data dir: online backups never read it, but it names the source and the folder's place.
  await mkdir(join(dataDir, 'shared'), {recursive: true})
  await writeFile(join(dataDir, 'shared', 'x'), 'x')
  mo = await startFakeMo(async (statement, connection) => {
    const dir = /FILESYSTEM '([^']+)'/.exec(statement)?.[1]
    if (!dir) throw new Error(`unexpected statement: ${statement}`)
    await (/TYPE 'incremental'/.test(statement)
      ? writeBackupFolder(dir, {
          inBase: OBJECTS,
          objects: [NEW_OBJECT],
          taeSum: `2024-05-15 14:29:38,3000,${INCREMENTAL_TS},incremental`,
        })
      : writeBackupFolder(dir))
    await damage?.(dir)
    connection.writeOk()
  })
})

afterAll(async () => {
  await mo?.close()
  await tmp?.cleanup()
})

const backup = (...extra: string[]) =>
  runInProcess(
    backupArgs(repo, dataDir, '--mode', 'online', '--no-encrypt', '--port', String(mo.port), '--json', ...extra),
  )

describe('online backups', () => {
  let fullId: string
  let incId: string

  it("runs MO's BACKUP beside the data dir, packs the checked folder, removes it, and records MO's backup ts", async () => {
    const r = await backup('--parallelism', '3')
    expect(r.code, r.stderr).toBe(0)
    const record = JSON.parse(r.stdout)
    fullId = record.id
    expect(record).toMatchObject({backupTs: FULL_TS, mode: 'online', type: 'full'})
    expect(record.source.serverVersion).toContain('MatrixOne')
    const statement = mo.statements.find((s) => s.startsWith('BACKUP'))!
    expect(statement).toMatch(
      new RegExp(`^BACKUP '\\d+' FILESYSTEM '${tmp.path}/\\.mo-data\\.online-${fullId}' PARALLELISM '3'$`),
    )
    expect((await readdir(tmp.path)).filter((n) => n.includes('.online-'))).toEqual([])
    const list = await runInProcess(['br', 'list', '--path', repo, '--wide'])
    expect(list.stdout).toContain(FULL_TS)
  })

  it("takes an incremental with TYPE 'incremental' TIMESTAMP of the base, holding only MO's new files", async () => {
    const r = await backup('--type', 'incremental')
    expect(r.code, r.stderr).toBe(0)
    const record = JSON.parse(r.stdout)
    incId = record.id
    expect(record).toMatchObject({backupTs: INCREMENTAL_TS, base: fullId, chain: [fullId, incId], type: 'incremental'})
    expect(mo.statements.findLast((s) => s.startsWith('BACKUP'))).toMatch(
      new RegExp(`PARALLELISM '${defaultParallelism()}' TYPE 'incremental' TIMESTAMP '${FULL_TS}'$`),
    )
    expect(record.sizes.archived).toBeLessThan(record.sizes.total)
  })

  it('restores the incremental as mo_br restore lays it out: tae/ into shared/, hk_data into local/', async () => {
    const target = join(tmp.path, 'restored', 'mo-data')
    // a MatrixOne whose configs read the legacy layout (DISK in mo-data/shared, mo-data/local)
    await writeLaunchConfig(join(tmp.path, 'restored'), 'legacy')
    const r = await runInProcess(restoreArgs(incId, repo, target, ...NO_SQL, '--json'))
    expect(r.code, r.stderr).toBe(0)
    const tree = await treeHashes(target)
    // What MO's incremental tae_list names: the new object, the three the full holds, its own ckp/ and gc/.
    expect(
      Object.keys(tree)
        .filter((p) => !p.endsWith('/'))
        .sort(),
    ).toEqual(
      [
        `shared/${NEW_OBJECT}`,
        ...OBJECTS.map((o) => `shared/${o}`),
        'shared/ckp/meta_0-0_1715745404915410000-1.ckp',
        'shared/ckp/meta_1715745404915410000-1_1715745404915410000-1.ckp',
        'shared/gc/gc_0-0_1715745404915410000-1.fgc',
        'local/hk_data',
      ].sort(),
    )
    // Byte for byte what MO wrote (framed as on its disk): compare with a folder written the same way.
    const fresh = join(tmp.path, 'expected-full')
    await writeBackupFolder(fresh)
    expect(await readFile(join(target, 'shared', OBJECTS[0]))).toEqual(await readFile(join(fresh, 'tae', OBJECTS[0])))
    expect(await readFile(join(target, 'local', 'hk_data'))).toEqual(await readFile(join(fresh, 'hakeeper', 'hk_data')))
  })

  it('refuses a cold incremental on an online base, and --clone with --mode online (exit 2)', async () => {
    const cold = await runInProcess(backupArgs(repo, dataDir, '--no-encrypt', ...NO_SQL, '--type', 'incremental'))
    expect(cold.code).toBe(2)
    expect(cold.stderr).toContain(`base ${incId} is an online backup: cold incrementals need cold bases`)
    const clone = await backup('--clone')
    expect(clone.code).toBe(2)
    expect(clone.stdout).toContain('--clone is for cold backups')
  })

  it('fails with exit 3 when a file does not match its sidecar, publishing nothing and leaving no folder', async () => {
    damage = async (dir) => writeFile(join(dir, 'mo_meta'), 'version,0824,\n')
    try {
      const r = await backup()
      expect(r.code).toBe(3)
      expect(JSON.parse(r.stdout).error.message).toContain('mo_meta')
    } finally {
      damage = undefined
    }

    const list = await runInProcess(['br', 'list', '--path', repo, '--json'])
    expect(JSON.parse(list.stdout).map((b: {id: string}) => b.id)).toEqual([fullId, incId])
    expect((await readdir(tmp.path)).filter((n) => n.includes('.online-'))).toEqual([])
  })

  it('names the folder a killed online backup left beside the data dir, and leaves it (it may be a live run)', async () => {
    const left = join(tmp.path, `.mo-data.online-${DEAD_RUN}`)
    await mkdir(join(left, 'tae'), {recursive: true})
    await writeFile(join(left, 'tae', 'object'), 'x')
    // Not ours (no backup id), and a name that would drive the terminal: never described.
    const other = join(tmp.path, '.mo-data.online-\u001B[2Jnot-a-run')
    await mkdir(other)
    try {
      const r = await backup('--type', 'full')
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).toContain(
        `Warning: ${left} is left by an online backup started 2024-05-15T14:29:38.000Z that did not finish (or one running now): remove it (rm -rf ${left}) once no online backup of this MatrixOne runs`,
      )
      expect(r.stderr).not.toContain('not-a-run')
      expect(await readFile(join(left, 'tae', 'object'), 'utf8')).toBe('x')
      expect((await readdir(tmp.path)).filter((n) => n.includes('.online-')).sort()).toEqual(
        [`.mo-data.online-${DEAD_RUN}`, '.mo-data.online-\u001B[2Jnot-a-run'].sort(),
      )
    } finally {
      await rm(left, {force: true, recursive: true})
      await rm(other, {force: true, recursive: true})
    }
  })
})
