/**
 * The AWS SDK loads only when an S3 repository is used: a command on a local repository never
 * imports it (every CLI process would pay its start-up cost). Proven with a module resolve hook
 * (node:module register) in the CLI process that logs every @aws-sdk specifier resolved; the
 * same hook sees the SDK load when an S3 backend connects, so an empty log means something.
 */
import {execFile} from 'node:child_process'
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'
import {promisify} from 'node:util'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {openRepository} from '../../src/lib/repo/repository.js'
import {ROOT, runCli, tempDir, type TempDir} from '../helpers/cli.js'
import {freePort} from '../helpers/net.js'
import {resolveLogger, type ResolveLogger} from '../helpers/resolve-log.js'

let tmp: TempDir
let sdkLog: ResolveLogger

beforeAll(async () => {
  tmp = await tempDir()
  sdkLog = await resolveLogger(tmp.path, '@aws-sdk/', 'SDK_LOG')
})
afterAll(async () => tmp?.cleanup())

describe('the AWS SDK loads lazily', () => {
  it('br list on a local repository never resolves an @aws-sdk module; an S3 backend that connects does', async () => {
    const repo = join(tmp.path, 'repo')
    await openRepository(repo, {create: true})
    const list = await runCli(['br', 'list', '--path', repo, '--json'], {
      env: sdkLog.env('local.log'),
    })
    expect(list.stderr).toBe('')
    expect(list.code).toBe(0)
    expect(JSON.parse(list.stdout)).toBeDefined()
    expect(await sdkLog.read('local.log')).toBe('')

    // The control: the same hook in a process whose S3 backend connects (to nothing) sees the SDK.
    const script = `const {backendFor} = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'dist/lib/repo/backend-for.js')).href)})
await backendFor({location: 's3://b/', s3: {bucket: 'b', credentials: {accessKeyId: 'k', secretAccessKey: 's'}, endpoint: 'http://127.0.0.1:${await freePort()}', forcePathStyle: true, prefix: ''}}).connect().catch(() => {})`
    await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
      env: {...process.env, ...sdkLog.env('s3.log')},
    })
    expect(await sdkLog.read('s3.log')).toContain('@aws-sdk/client-s3')
  }, 60_000)
})
