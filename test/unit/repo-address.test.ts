/**
 * repoAddress: --path and the S3 flags (with mo_br's names) into one RepoAddress, in process.
 * Every refusal is a usage error (exit 2) that names the flag and never prints a secret; the CLI
 * wiring of a few of them is proven by test/integration/s3-cli.test.ts.
 */
import {mkdir, writeFile} from 'node:fs/promises'
import {join, resolve} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BrError} from '../../src/lib/errors.js'
import {redact} from '../../src/lib/redact.js'
import {checkEndpoint, repoAddress, type S3FlagValues} from '../../src/repo-address.js'
import {tempDir, type TempDir} from '../helpers/cli.js'

const SECRET = 'wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY'

const withSecretFile = (file: string): S3FlagValues => ({'access-key-id': 'AKID', 'secret-access-key-file': file})

/** The usage error repoAddress throws, or a failure naming what it returned instead. */
async function refusal(location: string | undefined, flags: S3FlagValues, env: NodeJS.ProcessEnv = {}) {
  try {
    const address = await repoAddress(location, flags, env)
    throw new Error(`accepted: ${JSON.stringify({...address, s3: {...address.s3, credentials: undefined}})}`)
  } catch (error) {
    if (!(error instanceof BrError)) throw error
    expect(error.exitCode).toBe(2)
    expect(error.message).not.toMatch(/\n/)
    expect(error.message).not.toContain(SECRET)
    expect(error.suggestions.join('\n')).not.toContain(SECRET)
    return error
  }
}

describe('repoAddress', () => {
  let tmp: TempDir
  let secretFile: string
  let emptyFile: string
  beforeAll(async () => {
    tmp = await tempDir('moctl-br-repo-address-')
    secretFile = join(tmp.path, 'secret')
    emptyFile = join(tmp.path, 'empty')
    await writeFile(secretFile, `${SECRET}\n`, {mode: 0o600})
    await writeFile(emptyFile, '', {mode: 0o600})
    await mkdir(join(tmp.path, 'dir'))
  })
  afterAll(() => tmp?.cleanup())

  it('resolves a local path to an absolute directory, with no S3 settings', async () => {
    expect(await repoAddress('backups/mo', {'backup-dir': 'filesystem'})).toEqual({location: resolve('backups/mo')})
  })

  it('takes s3://BUCKET/PREFIX with its settings; the location holds no secret', async () => {
    const address = await repoAddress(
      'S3://my-bucket/mo/prod/',
      {
        'access-key-id': 'AKIDEXAMPLE',
        endpoint: 'http://127.0.0.1:9000/',
        'force-path-style': true,
        region: 'eu-west-1',
        'secret-access-key-file': secretFile,
      },
      {},
    )
    expect(address).toEqual({
      location: 's3://my-bucket/mo/prod',
      s3: {
        bucket: 'my-bucket',
        credentials: {accessKeyId: 'AKIDEXAMPLE', secretAccessKey: SECRET},
        endpoint: 'http://127.0.0.1:9000',
        forcePathStyle: true,
        prefix: 'mo/prod/',
        region: 'eu-west-1',
      },
    })
    // Read from a file, the secret is registered: nothing prints it from now on.
    expect(redact(`key ${SECRET}`, {})).toBe('key ***')
  })

  it('a bucket root, and the chain (no credentials) when no key flag is given', async () => {
    expect(await repoAddress('s3://bucket', {profile: 'backup', 'role-arn': 'arn:aws:iam::1:role/b'})).toEqual({
      location: 's3://bucket',
      s3: {bucket: 'bucket', forcePathStyle: false, prefix: '', profile: 'backup', roleArn: 'arn:aws:iam::1:role/b'},
    })
  })

  it("builds the location from mo_br's --backup_dir s3 --bucket --filepath, without --path", async () => {
    const address = await repoAddress(undefined, {'backup-dir': 's3', bucket: 'mo-backups', filepath: 'nightly/db1'})
    expect(address.location).toBe('s3://mo-backups/nightly/db1')
    expect(address.s3).toMatchObject({bucket: 'mo-backups', prefix: 'nightly/db1/'})
    // --restore_dir s3 too, and --bucket alone
    expect((await repoAddress(undefined, {bucket: 'mo-backups', 'restore-dir': 's3'})).location).toBe('s3://mo-backups')
  })

  it("mo_br's --secret_access_key on the command line: taken, and registered for redaction", async () => {
    const onCommandLine = 'cmdline-Secret-Value-123'
    const address = await repoAddress('s3://bucket/p', {'access-key-id': 'AKID', 'secret-access-key': onCommandLine})
    expect(address.s3?.credentials).toEqual({accessKeyId: 'AKID', secretAccessKey: onCommandLine})
    expect(redact(`with ${onCommandLine}`, {})).toBe('with ***')
  })

  it('half a static key takes the other half from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY', async () => {
    const fromEnv = await repoAddress('s3://bucket/p', {'access-key-id': 'AKID'}, {AWS_SECRET_ACCESS_KEY: SECRET})
    expect(fromEnv.s3?.credentials).toEqual({accessKeyId: 'AKID', secretAccessKey: SECRET})
    const idFromEnv = await repoAddress(
      's3://bucket/p',
      {'secret-access-key-file': secretFile},
      {AWS_ACCESS_KEY_ID: 'AKENV'},
    )
    expect(idFromEnv.s3?.credentials).toEqual({accessKeyId: 'AKENV', secretAccessKey: SECRET})
  })

  it('object lock: days and mode (compliance by default)', async () => {
    expect((await repoAddress('s3://b-1/p', {'object-lock-days': 30})).s3?.objectLock).toEqual({
      days: 30,
      mode: 'COMPLIANCE',
    })
    expect(
      (await repoAddress('s3://b-1/p', {'object-lock-days': 7, 'object-lock-mode': 'governance'})).s3?.objectLock,
    ).toEqual({days: 7, mode: 'GOVERNANCE'})
  })

  describe('refuses, exit 2, naming the flag', () => {
    it('S3 flags with a local --path', async () => {
      const error = await refusal('/backups/mo', {endpoint: 'http://127.0.0.1:9000', region: 'us-east-1'})
      expect(error.message).toBe(
        '--endpoint, --region are for an S3 repository, but --path /backups/mo is a local directory',
      )
      expect(error.suggestions[0]).toMatch(/s3:\/\/BUCKET\/PREFIX/)
      expect((await refusal('/backups/mo', {'force-path-style': true})).message).toMatch(/^--force-path-style is for/)
    })

    it('--backup_dir s3 (or --restore_dir s3) without --bucket', async () => {
      expect((await refusal(undefined, {'backup-dir': 's3'})).message).toBe('--backup_dir s3 needs --bucket')
      expect((await refusal('/backups/mo', {'backup-dir': 's3'})).message).toBe('--backup_dir s3 needs --bucket')
      expect((await refusal(undefined, {'restore-dir': 's3'})).message).toBe('--restore_dir s3 needs --bucket')
    })

    it('--filepath without --bucket; --bucket and --path together; nothing at all', async () => {
      expect((await refusal(undefined, {filepath: 'x'})).message).toBe('--filepath needs --bucket')
      expect((await refusal('s3://a-b/c', {bucket: 'a-b'})).message).toBe(
        '--bucket and --path both name the repository',
      )
      expect((await refusal(undefined, {})).message).toMatch(/^missing --path/)
    })

    it.each([
      ['s3://', /^--path s3:\/\/ is not a valid S3 location$/],
      ['s3:///prefix', /is not a valid S3 location$/],
      ['s3://ab/x', /is not a valid S3 location$/],
      ['s3://bucket/a/../b', /is not a valid S3 location$/],
      ['s3://bad bucket/x', /is not a valid S3 location$/],
      // credentials in the URL: refused without printing them
      [`s3://AKID:${SECRET}@bucket/x`, /^--path \(the value given\) is not a valid S3 location$/],
    ])('a malformed s3:// URL: %s', async (url, message) => {
      expect((await refusal(url, {})).message).toMatch(message)
    })

    it('a malformed --bucket', async () => {
      expect((await refusal(undefined, {'backup-dir': 's3', bucket: 'a/b'})).message).toMatch(
        /^--bucket a\/b is not a valid S3 location$/,
      )
    })

    it.each([
      'ftp://host:21',
      'http://',
      'http://host/some/path',
      'http://host:9000?x=1',
      'http://host:99999',
      'not a url',
    ])('an endpoint that is not http(s)://host[:port]: %s', async (endpoint) => {
      expect((await refusal('s3://bucket/p', {endpoint})).message).toMatch(
        /^--endpoint .* is not an http\(s\):\/\/host\[:port\] URL$/,
      )
    })

    it('an endpoint with credentials in it, without printing them', async () => {
      const error = await refusal('s3://bucket/p', {endpoint: `http://AKID:${SECRET}@host:9000`})
      expect(error.message).toBe('--endpoint holds credentials (user:password@)')
    })

    it('--object-lock-days without an S3 path, or below 1, or a mode without days', async () => {
      expect((await refusal('/backups/mo', {'object-lock-days': 30})).message).toMatch(
        /^--object-lock-days is for an S3/,
      )
      expect((await refusal('s3://bucket/p', {'object-lock-days': 0})).message).toMatch(
        /^--object-lock-days must be a whole number of days from 1 to 36500, not 0$/,
      )
      expect((await refusal('s3://bucket/p', {'object-lock-days': -3})).message).toMatch(/not -3$/)
      expect((await refusal('s3://bucket/p', {'object-lock-mode': 'governance'})).message).toBe(
        '--object-lock-mode needs --object-lock-days',
      )
    })

    it('an unreadable, empty or directory secret file', async () => {
      expect((await refusal('s3://bucket/p', withSecretFile(join(tmp.path, 'missing')))).message).toMatch(
        /^cannot read --secret-access-key-file .*missing: no such file$/,
      )
      expect((await refusal('s3://bucket/p', withSecretFile(emptyFile))).message).toMatch(
        /^--secret-access-key-file .* is empty$/,
      )
      expect((await refusal('s3://bucket/p', withSecretFile(join(tmp.path, 'dir')))).message).toMatch(
        /is a directory, not a regular file$/,
      )
    })

    it('--access-key-id without a secret, a secret without a key id, and both secret flags', async () => {
      expect((await refusal('s3://bucket/p', {'access-key-id': 'AKID'})).message).toBe(
        '--access-key-id needs its secret key',
      )
      expect((await refusal('s3://bucket/p', {'secret-access-key-file': secretFile})).message).toBe(
        '--secret-access-key-file needs the access key id it belongs to',
      )
      expect(
        (await refusal('s3://bucket/p', {'secret-access-key': SECRET, 'secret-access-key-file': secretFile})).message,
      ).toMatch(/both give the secret key$/)
      expect(
        (await refusal('s3://bucket/p', {'access-key-id': 'AKID', profile: 'p', 'secret-access-key-file': secretFile}))
          .message,
      ).toMatch(/^--profile and a static key/)
    })
  })

  it('checkEndpoint: a bare host[:port] means https, as mo_br scripts give it', () => {
    expect(checkEndpoint('cos.ap-guangzhou.myqcloud.com')).toBe('https://cos.ap-guangzhou.myqcloud.com')
    expect(checkEndpoint('minio.local:9000')).toBe('https://minio.local:9000')
    expect(checkEndpoint('HTTP://127.0.0.1:9000')).toBe('http://127.0.0.1:9000')
  })
})
