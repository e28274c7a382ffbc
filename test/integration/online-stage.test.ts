/**
 * `br backup --mode online --stage s3://BUCKET/PREFIX` (in process), against the MO stand-in
 * (fake-mo.ts) and a real S3 server on loopback (s3rver, test/helpers/s3.ts): the stand-in answers
 * `BACKUP … S3OPTION {…}` by writing MO's BACKUP layout into the bucket at the statement's
 * filepath, with the statement's keys (fake-mo-s3.ts). A full (raw, as MO's S3 file service
 * writes), an incremental on it (CRC-framed), a restore compared byte for byte; a backup into an
 * S3 repository whose settings the stage borrows; a tampered staged object refused; the staging
 * prefix gone after each run; bad --stage inputs refused before BACKUP is sent.
 */
import {mkdir, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {S3Backend} from '../../src/lib/repo/s3.js'
import {backupArgs, NO_SQL, restoreArgs} from '../helpers/args.js'
import {runInProcess, tempDir} from '../helpers/cli.js'
import {type S3Server, startS3} from '../helpers/s3.js'
import {treeHashes} from '../helpers/tree.js'
import {parseS3Option, writeBackupToS3} from '../unit/lib/mo/fake-mo-s3.js'
import {type FakeMo, startFakeMo} from '../unit/lib/mo/fake-mo.js'
import {FULL_TS, INCREMENTAL_TS, OBJECTS, writeBackupFolder, writeLaunchConfig} from '../unit/lib/mo/fixture.js'

const NEW_OBJECT = '018f7a99-0000-7000-8000-000000000001_00000'
/** the id of a run killed on 2024-05-15T14:29:38Z (a UUIDv7: its first 48 bits are that millisecond) */
const DEAD_RUN = '018f7ca8-a450-7000-8000-000000000000'
/** s3rver checks only the key id: a secret nobody else uses can be looked for in every output. */
const SECRET = 'stage-secret-9c1e77d04b'

let tmp: {cleanup: () => Promise<void>; path: string}
let s3: S3Server
let mo: FakeMo
let dataDir: string
let repo: string
let secretFile: string
/** what the stand-in does to the staged objects after writing them */
let damage: ((option: Record<string, string>) => Promise<void>) | undefined

beforeAll(async () => {
  tmp = await tempDir()
  s3 = await startS3()
  dataDir = join(tmp.path, 'mo-data')
  repo = join(tmp.path, 'repo')
  secretFile = join(tmp.path, 'stage.secret')
  await writeFile(secretFile, `${SECRET}\n`, {mode: 0o600})
  await mkdir(join(dataDir, 'shared'), {recursive: true})
  mo = await startFakeMo(async (statement, connection) => {
    const option = parseS3Option(statement)
    if (!option) throw new Error(`unexpected statement: ${statement}`)
    await writeBackupToS3(
      option,
      /TYPE 'incremental'/.test(statement)
        ? {
            framed: true,
            inBase: OBJECTS,
            objects: [NEW_OBJECT],
            taeSum: `2024-05-15 14:29:38,3000,${INCREMENTAL_TS},incremental`,
          }
        : {framed: false},
    )
    await damage?.(option)
    connection.writeOk()
  })
})

afterAll(async () => {
  await mo?.close()
  await s3?.stop()
  await tmp?.cleanup()
})

const stageArgs = (prefix = 'stage') => [
  '--stage',
  s3.url(prefix),
  '--stage-endpoint',
  s3.endpoint,
  '--stage-force-path-style',
  '--stage-region',
  'us-east-1',
  '--stage-access-key-id',
  s3.credentials.accessKeyId,
  '--stage-secret-access-key-file',
  secretFile,
]
const online = (path: string, ...extra: string[]) =>
  runInProcess(
    backupArgs(path, dataDir, '--mode', 'online', '--no-encrypt', '--port', String(mo.port), '--json', ...extra),
  )
/** every object left in the bucket under `prefix` */
const leftUnder = async (prefix: string) => {
  const bucket = new S3Backend({location: s3.url(), s3: s3.settings()})
  return (await bucket.list('')).map((o) => o.key).filter((key) => key.startsWith(prefix))
}

describe('online backups through an S3 staging prefix', () => {
  let fullId: string
  let incId: string

  it('sends BACKUP … S3OPTION into a fresh prefix, streams it into the repository, and deletes the prefix', async () => {
    const r = await online(repo, '--parallelism', '3', ...stageArgs())
    expect(r.code, r.stderr).toBe(0)
    const record = JSON.parse(r.stdout)
    fullId = record.id
    expect(record).toMatchObject({backupTs: FULL_TS, mode: 'online', type: 'full'})
    const sent = mo.statements.find((s) => s.startsWith('BACKUP'))!
    expect(sent).toMatch(
      new RegExp(
        `^BACKUP '\\d+' S3OPTION \\{'endpoint'='${s3.endpoint}', 'bucket'='${s3.bucket}', 'filepath'='stage/online-${fullId}', 'access_key_id'='S3RVER', 'secret_access_key'='${SECRET}', 'region'='us-east-1', 'is_minio'='true', 'parallelism'='3'\\}$`,
      ),
    )
    // The secret went to MO, and nowhere else.
    expect(r.stdout + r.stderr).not.toContain(SECRET)
    expect(await leftUnder('stage/')).toEqual([])
  })

  it("takes an incremental with the base's TIMESTAMP, from a CRC-framed staging prefix", async () => {
    const r = await online(repo, '--type', 'incremental', ...stageArgs())
    expect(r.code, r.stderr).toBe(0)
    const record = JSON.parse(r.stdout)
    incId = record.id
    expect(record).toMatchObject({backupTs: INCREMENTAL_TS, base: fullId, chain: [fullId, incId], type: 'incremental'})
    expect(mo.statements.findLast((s) => s.startsWith('BACKUP'))).toMatch(
      new RegExp(`'parallelism'='\\d+'\\} TYPE 'incremental' TIMESTAMP '${FULL_TS}'$`),
    )
    expect(await leftUnder('stage/')).toEqual([])
  })

  it('restores the full as a legacy (DISK) MatrixOne reads it: the raw staged objects CRC-framed', async () => {
    const target = join(tmp.path, 'restored', 'mo-data')
    // the target reads SHARED as DISK (CRC-framed) in mo-data/shared: the full was staged raw (DISK-V2)
    await writeLaunchConfig(join(tmp.path, 'restored'), 'legacy')
    const r = await runInProcess(restoreArgs(fullId, repo, target, ...NO_SQL, '--json'))
    expect(r.code, r.stderr).toBe(0)
    const files = Object.keys(await treeHashes(target)).filter((p) => !p.endsWith('/'))
    expect(files).toEqual(expect.arrayContaining(OBJECTS.map((o) => `shared/${o}`)))
    const framed = join(tmp.path, 'expected-framed')
    await writeBackupFolder(framed, {framed: true})
    for (const object of OBJECTS)
      expect((await readFile(join(target, 'shared', object))).equals(await readFile(join(framed, 'tae', object)))).toBe(
        true,
      )
  })

  it("packs into an S3 repository, the stage borrowing the repository's settings", async () => {
    const s3Repo = [
      '--endpoint',
      s3.endpoint,
      '--force-path-style',
      '--region',
      'us-east-1',
      '--access-key-id',
      s3.credentials.accessKeyId,
      '--secret-access-key-file',
      secretFile,
    ]
    const r = await online(s3.url('repo'), ...s3Repo, '--stage', s3.url('staging'))
    expect(r.code, r.stderr).toBe(0)
    const {id} = JSON.parse(r.stdout)
    expect(mo.statements.at(-1)).toContain(`'filepath'='staging/online-${id}'`)
    expect(await leftUnder('staging/')).toEqual([])
    const target = join(tmp.path, 'from-s3', 'mo-data')
    // a v4.2 target: SHARED is DISK-V2 (raw) in mo-data/shared2
    await writeLaunchConfig(join(tmp.path, 'from-s3'), 'v4.2')
    const restored = await runInProcess(restoreArgs(id, s3.url('repo'), target, ...s3Repo, ...NO_SQL, '--json'))
    expect(restored.code, restored.stderr).toBe(0)
    const raw = join(tmp.path, 'expected-raw')
    await writeBackupFolder(raw, {framed: false})
    expect(await readFile(join(target, 'shared2', OBJECTS[1]))).toEqual(await readFile(join(raw, 'tae', OBJECTS[1])))
  })

  it('refuses a staged object that does not match tae_list (exit 3): nothing published, the prefix deleted', async () => {
    damage = async (option) => {
      const stage = new S3Backend({location: s3.url(option.filepath), s3: s3.settings(option.filepath)})
      await stage.save(`tae/${OBJECTS[0]}`, Buffer.alloc(5000, 7))
    }

    try {
      const r = await online(repo, ...stageArgs())
      expect(r.code).toBe(3)
      expect(JSON.parse(r.stdout).error.message).toBe(
        `tae/${OBJECTS[0]} does not match its sha256 in tae/tae_list (content sha256 ${(await sha256Of(Buffer.alloc(5000, 7))).toString()}, listed ${await listedSha(OBJECTS[0])})`,
      )
    } finally {
      damage = undefined
    }

    const list = await runInProcess(['br', 'list', '--path', repo, '--json'])
    expect(JSON.parse(list.stdout).map((b: {id: string}) => b.id)).toEqual([fullId, incId])
    expect(await leftUnder('stage/')).toEqual([])
  })

  it('deletes what a killed BACKUP left in the prefix, and says it was killed (exit 5)', async () => {
    damage = async () => {
      throw new Error('query interrupted')
    }

    try {
      const r = await online(repo, ...stageArgs())
      expect(r.code).toBe(5)
      expect(JSON.parse(r.stdout).error.message).toBe(
        `the BACKUP statement on 127.0.0.1:${mo.port} was killed (query interrupted): nothing was published`,
      )
      expect(r.stdout + r.stderr).not.toContain(SECRET)
    } finally {
      damage = undefined
    }

    expect(await leftUnder('stage/')).toEqual([])
  })

  it('names the prefix a killed staged backup left, with its size, and leaves it (it may be a live run)', async () => {
    const bucket = new S3Backend({location: s3.url(), s3: s3.settings()})
    await bucket.save(`stage/online-${DEAD_RUN}/tae/object`, Buffer.from('12345'))
    await bucket.save(`stage/online-${DEAD_RUN}/mo_meta`, Buffer.from('x'))
    // Not ours (no backup id): never described; its name is whatever a writer of the bucket chose.
    await bucket.save('stage/online-not-a-run/x', Buffer.from('x'))
    try {
      const r = await online(repo, ...stageArgs())
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).not.toContain('not-a-run')
      const where = `s3://${s3.bucket}/stage/online-${DEAD_RUN}/`
      expect(r.stderr).toContain(
        `Warning: ${where} is left by an online backup started 2024-05-15T14:29:38.000Z that did not finish (or one running now) (2 objects, 6 B): remove it (aws s3 rm --recursive ${where}) once no online backup of this MatrixOne runs`,
      )
      expect(await leftUnder('stage/')).toEqual([
        `stage/online-${DEAD_RUN}/mo_meta`,
        `stage/online-${DEAD_RUN}/tae/object`,
        'stage/online-not-a-run/x',
      ])
    } finally {
      await bucket.removePrefix('stage/')
    }
  })

  it.each([
    [['--stage', 's3://b/x'], '--stage is for online backups', 'cold'],
    [['--stage', '/tmp/stage'], '--stage /tmp/stage is not an S3 location', 'online'],
    [['--stage-endpoint', 'http://127.0.0.1:1'], '--stage-endpoint needs --stage', 'online'],
    [
      ['--stage', 's3://bucket-x/p', '--online-dir', '/tmp/o'],
      '--stage and --online-dir both say where MO writes',
      'online',
    ],
  ])('refuses %j before BACKUP is sent (exit 2)', async (extra, message, mode) => {
    const before = mo.statements.length
    const r = await runInProcess(
      backupArgs(repo, dataDir, '--mode', mode, '--no-encrypt', '--port', String(mo.port), '--json', ...extra),
    )
    expect(r.code).toBe(2)
    expect(JSON.parse(r.stdout).error.message).toBe(message)
    expect(mo.statements.length).toBe(before)
  })

  it('refuses a stage without credentials MO could use, before BACKUP is sent (exit 2)', async () => {
    const before = mo.statements.length
    const r = await runInProcess(
      backupArgs(
        repo,
        dataDir,
        '--mode',
        'online',
        '--no-encrypt',
        '--port',
        String(mo.port),
        '--json',
        '--stage',
        s3.url('x'),
      ),
      {env: {AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: ''}},
    )
    expect(r.code).toBe(2)
    expect(JSON.parse(r.stdout).error.message).toBe(
      `--stage s3://${s3.bucket}/x has no credentials MatrixOne can use: mo-service writes it with its own S3 client`,
    )
    expect(mo.statements.length).toBe(before)
  })
})

async function sha256Of(bytes: Buffer): Promise<string> {
  const {createHash} = await import('node:crypto')
  return createHash('sha256').update(bytes).digest('hex')
}

/** the digest tae_list gives an object of the full fixture */
async function listedSha(object: string): Promise<string> {
  const dir = join(tmp.path, 'listed')
  await writeBackupFolder(dir, {framed: false})
  const line = (await readFile(join(dir, 'tae', 'tae_list'), 'utf8')).split('\n').find((l) => l.startsWith(object))!
  return line.split(',')[2]
}
