/**
 * moctl br on an S3 repository, as an operator runs it: the CLI against a real S3-protocol
 * server on loopback (s3rver, test/helpers/s3.ts), reached through the S3 flags. The backups, the
 * killed one, the DEBUG list and the dead endpoint are processes, and carry the checks that the
 * secret is nowhere (a run in process registers the secret file's contents for redaction in the
 * worker, which would make those checks trivially true); the other runs are in process
 * (runInProcess), for CPU.
 *
 * - backup (full, then incremental after a change and the WAL appended to) → list → verify (and
 *   --quick) → restore, the repository in the bucket; the restored tree equals the source; a
 *   recognisable secret key given in --secret-access-key-file shows in no output and in no
 *   object of the bucket;
 * - a backup killed (SIGKILL) while it uploads its archive leaves nothing listed, and
 *   prune --incomplete-older-than 0 aborts the incomplete multipart upload;
 * - bad credentials, a missing bucket and a dead endpoint: one line each, naming the endpoint and
 *   bucket, with their exit codes;
 * - delete and prune on S3; a backup while another writer holds the lock gets exit 4.
 */
import {spawn} from 'node:child_process'
import {once} from 'node:events'
import {appendFile, readdir, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {backendFor} from '../../src/lib/repo/backend-for.js'
import {acquireLock} from '../../src/lib/repo/lock.js'
import {openRepository} from '../../src/lib/repo/repository.js'
import {repoAddress} from '../../src/repo-address.js'
import {encryptTo, NO_SQL, readWith, suiteKey, type SuiteKey} from '../helpers/args.js'
import {RUN, runCli, runInProcess, tempDir, type TempDir} from '../helpers/cli.js'
import {makeSmallDataDir} from '../helpers/fixtures.js'
import {freePort} from '../helpers/net.js'
import {type S3Server, startS3} from '../helpers/s3.js'
import {treeHashes} from '../helpers/tree.js'

/** s3rver checks only the access key id: any secret passes, so this one can be recognised anywhere. */
const SECRET = 'Recognisable-S3-Secret-Key-4419'

let tmp: TempDir
let s3: S3Server
let key: SuiteKey
let secretFile: string
beforeAll(async () => {
  tmp = await tempDir('moctl-br-s3-e2e-')
  s3 = await startS3()
  key = await suiteKey(tmp.path)
  secretFile = join(tmp.path, 's3.secret')
  await writeFile(secretFile, `${SECRET}\n`, {mode: 0o600})
})
afterAll(async () => {
  await s3?.stop()
  await tmp?.cleanup()
})

/** The repository at `prefix` in the test bucket, and how to reach it. */
const repoArgs = (prefix: string, over: {accessKeyId?: string; endpoint?: string; url?: string} = {}) => [
  '--path',
  over.url ?? s3.url(prefix),
  '--endpoint',
  over.endpoint ?? s3.endpoint,
  '--force-path-style',
  '--region',
  'us-east-1',
  '--access-key-id',
  over.accessKeyId ?? s3.credentials.accessKeyId,
  '--secret-access-key-file',
  secretFile,
]

/** The S3 flags of repoArgs, as repoAddress takes them: for what the test does in process. */
const s3Flags = () => ({
  'access-key-id': s3.credentials.accessKeyId,
  endpoint: s3.endpoint,
  'force-path-style': true,
  region: 'us-east-1',
  'secret-access-key-file': secretFile,
})

const backup = (prefix: string, dataDir: string, ...extra: string[]) =>
  runCli(['br', 'backup', ...repoArgs(prefix), '--data-dir', dataDir, ...encryptTo(key), ...NO_SQL, ...extra, '--json'])

/** Every file s3rver keeps (objects, metadata, uploads), as text: where a secret must not be. */
async function bucketText(): Promise<string> {
  const files = (await readdir(s3.directory, {recursive: true, withFileTypes: true})).filter((e) => e.isFile())
  const texts = await Promise.all(files.map((f) => readFile(join(f.parentPath, f.name), 'latin1')))
  return texts.join('\n')
}

describe('a chain in the bucket: backup, incremental, list, verify, restore', () => {
  it('restores the tree it backed up; the secret key is in no output and no object', async () => {
    const dataDir = join(tmp.path, 'chain', 'mo-data')
    await makeSmallDataDir(dataDir, {seed: 3})
    const outputs: string[] = []
    const ok = (run: Awaited<ReturnType<typeof runCli>>, what: string) => {
      outputs.push(run.stdout, run.stderr)
      expect(run.code, `${what}: ${run.stdout} ${run.stderr}`).toBe(0)
      return run
    }

    const full = JSON.parse(ok(await backup('chain', dataDir), 'full').stdout)
    await writeFile(join(dataDir, 'shared', 'new-object'), 'written after the full backup\n')
    // The WAL (300 kB) grows: the incremental holds its appended bytes only, restored from two archives.
    await appendFile(join(dataDir, 'logservice-data', 'wal', '0000000001.log'), 'appended after the full backup\n')
    const inc = JSON.parse(ok(await backup('chain', dataDir, '--type', 'incremental'), 'incremental').stdout)
    expect(inc).toMatchObject({base: full.id, type: 'incremental'})
    expect(inc.sizes.archived).toBe(
      'written after the full backup\n'.length + 'appended after the full backup\n'.length,
    )

    // The AWS chain: keys from the environment, and DEBUG=* output holds none of them.
    const chainArgs = repoArgs('chain').slice(0, 7)
    const env = {AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: SECRET, DEBUG: '*'}
    const list = JSON.parse(ok(await runCli(['br', 'list', ...chainArgs, '--json'], {env}), 'list').stdout)
    expect(list.map((r: {id: string}) => r.id)).toEqual([full.id, inc.id])
    ok(await runInProcess(['br', 'list', ...repoArgs('chain'), '--wide']), 'list --wide')
    expect(outputs.at(-2)).toContain(s3.url('chain').replace(/\/$/, ''))

    const quick = ok(await runInProcess(['br', 'verify', 'latest', ...repoArgs('chain'), '--quick']), 'verify --quick')
    expect(quick.stdout).toMatch(new RegExp(`^backup ${inc.id}: ok`))
    ok(await runInProcess(['br', 'verify', '--all', ...repoArgs('chain'), ...readWith(key)]), 'verify --all')

    const target = join(tmp.path, 'chain', 'restored', 'mo-data')
    const restore = ok(
      await runInProcess([
        'br',
        'restore',
        inc.id,
        ...repoArgs('chain'),
        '--data-dir',
        target,
        ...readWith(key),
        ...NO_SQL,
      ]),
      'restore',
    )
    expect(restore.stdout).toBe(`restored ${inc.id} into ${target}\n`)
    const source = await treeHashes(dataDir)
    delete source['shared-cache/'] // left out by default
    delete source['shared-cache/cached-object']
    expect(await treeHashes(target)).toEqual(source)

    for (const text of outputs) expect(text).not.toContain(SECRET)
    const stored = await bucketText()
    expect(stored).toContain(full.id) // the objects are there…
    expect(stored).not.toContain(SECRET) // …and the secret key is not
    const record = await readFile(
      join(s3.directory, s3.bucket, 'chain', 'backups', inc.id, 'backup.json._S3rver_object'),
      'utf8',
    )
    expect(record).not.toContain(s3.endpoint)
  })
})

describe('--object-lock-days through the CLI', () => {
  it('every object of the backup is PUT with the retention headers; lock.json and moctl-br.json are not', async () => {
    // s3rver ignores Object Lock: what reaches the store is checked at the request level.
    const recorded = await startS3({recorder: true})
    try {
      const dataDir = join(tmp.path, 'locked', 'mo-data')
      await makeSmallDataDir(dataDir, {seed: 9})
      const args = repoArgs('locked', {endpoint: recorded.endpoint, url: recorded.url('locked')})
      const started = Date.now()
      const run = await runCli([
        'br',
        'backup',
        ...args,
        '--data-dir',
        dataDir,
        ...encryptTo(key),
        ...NO_SQL,
        '--object-lock-days',
        '3',
        '--object-lock-mode',
        'governance',
        '--json',
      ])
      expect(run.code, run.stdout + run.stderr).toBe(0)
      const {id} = JSON.parse(run.stdout)
      const writes = recorded.requests.filter(
        (r) => r.method === 'PUT' || (r.method === 'POST' && r.query.has('uploads')),
      )
      const locked = (path: string) => writes.filter((r) => r.path.endsWith(path) && !r.query.has('partNumber'))
      for (const name of ['backup.json', 'manifest.age', 'data.tar.zst.age']) {
        const [write] = locked(`/locked/backups/${id}/${name}`)
        expect(write, name).toBeDefined()
        expect(write.headers['x-amz-object-lock-mode'], name).toBe('GOVERNANCE')
        const until = Date.parse(String(write.headers['x-amz-object-lock-retain-until-date']))
        expect(until - started, name).toBeGreaterThan(3 * 86_400_000 - 60_000)
        expect(until - started, name).toBeLessThan(3 * 86_400_000 + 120_000)
      }

      for (const name of ['/locked/lock.json', '/locked/moctl-br.json']) {
        for (const write of locked(name)) expect(write.headers['x-amz-object-lock-mode'], name).toBeUndefined()
      }
    } finally {
      await recorded.stop()
    }
  })
})

describe('a backup killed while it uploads', () => {
  it('leaves nothing listed; prune aborts its incomplete multipart upload', async () => {
    const dataDir = join(tmp.path, 'killed', 'mo-data')
    await makeSmallDataDir(dataDir, {seed: 5})
    // Incompressible and large enough for a multipart upload (parts of 8 MiB) that lasts a while.
    const big = Buffer.alloc(48 * 1024 * 1024)
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((Math.imul(i, 2_654_435_761) ^ (i >>> 7)) >>> 0, i)
    await writeFile(join(dataDir, 'shared', 'big-object'), big)
    const address = await repoAddress(s3.url('killed'), s3Flags(), {})
    const backend = backendFor(address)

    const child = spawn(
      process.execPath,
      [RUN, 'br', 'backup', ...repoArgs('killed'), '--data-dir', dataDir, '--no-encrypt', ...NO_SQL, '--quiet'],
      {env: {...process.env, NODE_ENV: undefined}, stdio: 'ignore'},
    )
    const exited = once(child, 'exit')
    // Killed once its archive's multipart upload has begun.
    const deadline = Date.now() + 60_000
    while ((await backend.listLeftovers('backups/')).length === 0) {
      expect(Date.now(), 'no multipart upload began').toBeLessThan(deadline)
      await new Promise((resolve) => {
        setTimeout(resolve, 50)
      })
    }

    child.kill('SIGKILL')
    await exited
    expect((await backend.listLeftovers('backups/')).length).toBeGreaterThan(0)

    const list = await runInProcess(['br', 'list', ...repoArgs('killed'), '--json'])
    expect(list.code).toBe(0)
    expect(JSON.parse(list.stdout)).toEqual([])
    // The killed run's lock is its own host's dead pid: taken over with a warning.
    const prune = await runInProcess([
      'br',
      'prune',
      ...repoArgs('killed'),
      '--keep-last',
      '1',
      '--incomplete-older-than',
      '0',
      '--json',
    ])
    expect(prune.code, prune.stdout + prune.stderr).toBe(0)
    expect(JSON.parse(prune.stdout).incompleteRemoved).toHaveLength(1)
    expect(await backend.listLeftovers('backups/')).toEqual([])
    expect(await backend.list('backups/')).toEqual([])
  })
})

describe('what the store says, one line each', () => {
  it('bad credentials (exit 1), a missing bucket (exit 2), a dead endpoint (exit 1)', async () => {
    const badKey = await runInProcess(['br', 'list', ...repoArgs('x', {accessKeyId: 'NOT-A-KEY'})])
    expect(badKey.code).toBe(1)
    expect(badKey.stderr).toMatch(
      new RegExp(
        `^Error: S3 endpoint ${s3.endpoint}, bucket ${s3.bucket}: the store refused the credentials .*\\nHint: `,
      ),
    )

    const noBucket = await runInProcess(['br', 'list', ...repoArgs('x', {url: 's3://no-such-bucket/x'})])
    expect(noBucket.code).toBe(2)
    expect(noBucket.stderr).toMatch(
      new RegExp(`^Error: S3 endpoint ${s3.endpoint}, bucket no-such-bucket: .*\\nHint: `),
    )

    const dead = `http://127.0.0.1:${await freePort()}`
    const unreachable = await runCli(['br', 'list', ...repoArgs('x', {endpoint: dead}), '--json'])
    expect(unreachable.code).toBe(1)
    expect(JSON.parse(unreachable.stdout).error.message).toMatch(
      new RegExp(`^S3 endpoint ${dead}, bucket ${s3.bucket}: `),
    )
    for (const run of [badKey, noBucket, unreachable]) {
      expect(run.stderr.split('\n').filter((l) => l.startsWith('Error:'))).toHaveLength(run === unreachable ? 0 : 1)
      expect(run.stdout + run.stderr).not.toContain(SECRET)
    }
  }, 120_000)
})

describe('delete, prune and the lock on S3', () => {
  it('a backup while another writer holds the lock gets exit 4; then prune and delete', async () => {
    const dataDir = join(tmp.path, 'lock', 'mo-data')
    await makeSmallDataDir(dataDir, {seed: 7})
    const first = await backup('lock', dataDir)
    expect(first.code, first.stderr).toBe(0)
    // Another writer (this process) holds the repository's lock in the bucket: held for as long as
    // the test says, not for as long as a racing backup happens to run. Two creators racing for
    // the lock object itself are the contract suite's (s3-backend.contract.test.ts).
    const repo = await openRepository(await repoAddress(s3.url('lock'), s3Flags(), {}))
    const unlock = await acquireLock(repo, {command: 'br backup'})
    let locked
    try {
      locked = await backup('lock', dataDir)
    } finally {
      await unlock()
    }

    expect(locked.code, locked.stderr).toBe(4)
    expect(JSON.parse(locked.stdout).error.message).toMatch(/locked/)
    const second = await backup('lock', dataDir)
    expect(second.code, second.stderr).toBe(0)

    const list = async () =>
      JSON.parse((await runInProcess(['br', 'list', ...repoArgs('lock'), '--json'])).stdout).map(
        (r: {id: string}) => r.id,
      )
    const ids = await list()
    expect(ids).toHaveLength(2)
    const prune = await runInProcess(['br', 'prune', ...repoArgs('lock'), '--keep-last', '1', '--json'])
    expect(prune.code, prune.stdout + prune.stderr).toBe(0)
    expect(JSON.parse(prune.stdout).removed).toEqual([ids[0]])
    const del = await runInProcess(['br', 'delete', ids[1], ...repoArgs('lock')])
    expect(del.code, del.stderr).toBe(0)
    expect(del.stdout).toBe(`deleted ${ids[1]}\n`)
    expect(await list()).toEqual([])
  })
})
