/**
 * The S3 flags through the CLI as a process, no server needed: a bad address is refused with
 * exit 2 and one line before anything is created or any service stopped; mo_br's
 * --secret_access_key on the command line is accepted with a warning and never printed (stderr,
 * --json, DEBUG=* output). Every other refusal is tested in process (test/unit/repo-address.test.ts).
 */
import {existsSync} from 'node:fs'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {backupArgs, NO_SQL} from '../helpers/args.js'
import {runCli, tempDir, type TempDir} from '../helpers/cli.js'

let tmp: TempDir
let dataDir: string
beforeAll(async () => {
  tmp = await tempDir('moctl-br-s3-flags-')
  dataDir = join(tmp.path, 'mo-data')
  await writeFile(join(tmp.path, 'placeholder'), '')
})
afterAll(() => tmp?.cleanup())

/** A --service command whose stop leaves a mark: a refusal must come before it. */
const markingService = (mark: string) => [
  '--service',
  'command',
  '--stop-cmd',
  `touch ${mark}`,
  '--start-cmd',
  'true',
  ...NO_SQL,
]

describe('refusals through the CLI (exit 2, one line, nothing touched)', () => {
  it('S3 flags with a local --path: nothing created, nothing stopped', async () => {
    const repo = join(tmp.path, 'local-repo')
    const mark = join(tmp.path, 'stopped-1')
    const run = await runCli(
      backupArgs(repo, dataDir, '--no-encrypt', '--endpoint', 'http://127.0.0.1:9000', ...markingService(mark)),
    )
    expect(run.code).toBe(2)
    expect(run.stdout).toBe('')
    expect(run.stderr).toMatch(
      new RegExp(`^Error: --endpoint is for an S3 repository, but --path ${repo} is a local directory\\nHint: `),
    )
    expect(existsSync(repo)).toBe(false)
    expect(existsSync(mark)).toBe(false)
  })

  it("restore's --restore_dir s3 without --bucket, under --json", async () => {
    const run = await runCli([
      'br',
      'restore',
      'latest',
      '--restore_dir',
      's3',
      '--data-dir',
      join(tmp.path, 'target'),
      '--json',
    ])
    expect(run.code).toBe(2)
    expect(JSON.parse(run.stdout)).toMatchObject({
      error: {code: 'usage', exitCode: 2, message: '--restore_dir s3 needs --bucket'},
    })
    expect(existsSync(join(tmp.path, 'target'))).toBe(false)
  })

  it("mo_br's --secret_access_key: a warning, and the secret in no message, --json or DEBUG line", async () => {
    const secret = 'moBr-Secret-Key-On-Argv-7731'
    const mark = join(tmp.path, 'stopped-2')
    const args = [
      'br',
      'backup',
      '--backup_dir',
      's3',
      '--bucket',
      'mo-backups',
      '--filepath',
      'nightly',
      '--access_key_id',
      'AKIDEXAMPLE',
      '--secret_access_key',
      secret,
      '--is_minio',
      // a bad endpoint: refused after the key was read, so the message path is exercised
      '--endpoint',
      'ftp://127.0.0.1:9000',
      '--data-dir',
      dataDir,
      '--no-encrypt',
      ...markingService(mark),
    ]
    const run = await runCli(args, {env: {DEBUG: '*'}})
    expect(run.code).toBe(2)
    expect(run.stderr).toMatch(/^Warning: --secret-access-key on the command line is visible to every user/m)
    expect(run.stderr).toMatch(/--secret-access-key-file FILE \(mode 0600\) or the AWS_SECRET_ACCESS_KEY/)
    expect(run.stderr).toMatch(
      /^Error: --endpoint ftp:\/\/127\.0\.0\.1:9000 is not an http\(s\):\/\/host\[:port\] URL$/m,
    )
    // DEBUG=* logs argv first thing: the secret is there as ***
    expect(run.stderr).toMatch(/--secret_access_key',\s*'\*\*\*'/)
    expect(run.stderr).not.toContain(secret)
    expect(run.stdout).not.toContain(secret)
    expect(existsSync(mark)).toBe(false)

    const json = await runCli([...args, '--json'])
    expect(json.code).toBe(2)
    expect(JSON.parse(json.stdout).error.message).toMatch(/^--endpoint /)
    expect(json.stdout + json.stderr).not.toContain(secret)
  })
})
