/**
 * `br copy` as an operator or a cron job runs it (bin/run.js as a process): the JSON result on
 * stdout, one line per backup otherwise, and the exit codes: 0, 2 for bad usage, 3 when a backup
 * could not be copied. The backups it copies are taken in process; what copyBackups does in every
 * case is test/unit/lib/repo/copy.test.ts's.
 */
import {cp, open, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {BackupRecord} from '../../src/lib/repo/types.js'

import {openRepository} from '../../src/lib/repo/repository.js'
import {optionsFor, takeBackup} from '../helpers/backup.js'
import {runCli, runInProcess, tempDir} from '../helpers/cli.js'
import {makeSmallDataDir} from '../helpers/fixtures.js'
import {startS3} from '../helpers/s3.js'

let tmp: {cleanup: () => Promise<void>; path: string}
let source: string
let records: BackupRecord[]

beforeAll(async () => {
  tmp = await tempDir('moctl-br-copy-cli-')
  const dataDir = join(tmp.path, 'mo-data')
  await makeSmallDataDir(dataDir)
  source = join(tmp.path, 'source')
  records = []
  for (const type of ['full', 'incremental', 'full'] as const)
    records.push(await takeBackup(optionsFor(dataDir, source, {type})))
})
afterAll(async () => tmp?.cleanup())

describe('br copy', () => {
  it('--json: the result on stdout, nothing else; the target lists the chain', async () => {
    const [full1, inc1] = records.map((r) => r.id)
    const to = join(tmp.path, 'target')
    const r = await runCli(['br', 'copy', inc1.slice(0, 13), '--from', source, '--to', to, '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toBe('')
    const result = JSON.parse(r.stdout)
    expect(result).toMatchObject({
      copied: [
        {id: full1, type: 'full'},
        {id: inc1, type: 'incremental'},
      ],
      failed: [],
      from: source,
      skipped: [],
      to,
    })
    expect(result.bytes).toBeGreaterThan(0)
    expect((await (await openRepository(to)).listBackups()).map((b) => b.id)).toEqual([full1, inc1])
  })

  it('--all with a damaged backup: the others copied, one line each, exit 3 naming it', async () => {
    const [full1, inc1, full2] = records.map((r) => r.id)
    const from = join(tmp.path, 'damaged-source')
    await cp(source, from, {recursive: true})
    const handle = await open(join(from, 'backups', full2, 'data.tar.zst'), 'r+')
    await handle.write(Buffer.from('X'), 0, 1, 100)
    await handle.close()
    const to = join(tmp.path, 'target-all')
    const r = await runInProcess(['br', 'copy', '--all', '--from', from, '--to', to, '--quiet'])
    expect(r.code).toBe(3)
    expect(r.stdout.split('\n')).toEqual([
      `copied ${full1} (full)`,
      `copied ${inc1} (incremental)`,
      expect.stringMatching(
        new RegExp(`^failed ${full2}: backup ${full2}: archive data.tar.zst in ${from} does not match its record`),
      ),
      '',
    ])
    expect(r.stderr).toBe(`Error: 1 backup of ${from} could not be copied: ${full2}\n`)
  })

  it('into S3 with the S3 flags (a static key from a file): --json names what was copied; the bucket lists it', async () => {
    const s3 = await startS3()
    try {
      const secret = join(tmp.path, 's3.secret')
      await writeFile(secret, `${s3.credentials.secretAccessKey}\n`, {mode: 0o600})
      const to = s3.url('offsite')
      const s3Args = ['--endpoint', s3.endpoint, '--force-path-style', '--region', 'us-east-1']
      const keyArgs = ['--access-key-id', s3.credentials.accessKeyId, '--secret-access-key-file', secret]
      const r = await runCli(['br', 'copy', 'latest', '--from', source, '--to', to, ...s3Args, ...keyArgs, '--json'])
      expect(r.code, r.stderr).toBe(0)
      expect(JSON.parse(r.stdout)).toMatchObject({copied: [{id: records[2].id, type: 'full'}], from: source, to})
      const bucket = await openRepository({location: to, s3: s3.settings('offsite')})
      expect((await bucket.listBackups()).map((b) => b.id)).toEqual([records[2].id])
    } finally {
      await s3.stop()
    }
  })

  it('bad usage: exit 2 with a one-line message naming the fix, nothing created', async () => {
    const to = join(tmp.path, 'never')
    const cases: [string[], string][] = [
      [
        ['--from', source, '--to', to],
        'Error: no backup named\nHint: pass a backup id (or latest), or --all for every backup --to lacks\n',
      ],
      [
        ['latest', '--from', 's3://mo/x', '--to', to],
        'Error: --from s3://mo/x is not a valid S3 location\nHint: write it as s3://BUCKET/PREFIX: a bucket name of 3-63 letters, digits, dots and hyphens, then an optional key prefix without . or .. parts\n',
      ],
      [
        ['--all', '--from', source, '--to', to, '--endpoint', 'http://127.0.0.1:9000'],
        'Error: --endpoint is for an S3 repository, but --from and --to are local directories\nHint: give --from or --to as s3://BUCKET/PREFIX, or drop the S3 flags\n',
      ],
      [
        ['latest', '--from', source, '--to', to, '--object-lock-days', '30'],
        `Error: --object-lock-days is for an S3 --to, but --to ${to} is a local directory\nHint: give --to as s3://BUCKET/PREFIX in a bucket with Object Lock enabled, or drop the Object Lock flags\n`,
      ],
      [
        ['latest', '--from', source, '--to', source],
        `Error: --from and --to are the same repository (${source}): nothing to copy\nHint: pass another location as --to\n`,
      ],
    ]
    for (const [args, stderr] of cases) {
      const r = await runInProcess(['br', 'copy', ...args])
      expect(r.code, r.stderr).toBe(2)
      expect(r.stderr).toBe(stderr)
      expect(r.stdout).toBe('')
    }

    await expect(openRepository(to)).rejects.toMatchObject({exitCode: 2})
  })
})
