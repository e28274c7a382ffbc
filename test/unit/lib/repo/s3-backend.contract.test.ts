/**
 * The S3 backend passes the backend contract (test/contract/backend.ts) on a real S3-protocol
 * server (s3rver on loopback, test/helpers/s3.ts), once under a key prefix and once at the root of
 * a bucket of its own. s3rver ignores If-None-Match, so createExclusive runs its listing protocol
 * here (the backend's probe finds that out); the conditional header itself is checked at the
 * request level in s3.test.ts. An object store holds no FIFO nor directory: the hostile-object
 * cases are the filesystem's.
 */
import {randomBytes} from 'node:crypto'
import {afterAll} from 'vitest'

import {S3Backend} from '../../../../src/lib/repo/s3.js'
import {backendContract} from '../../../contract/backend.js'
import {type S3Server, startS3} from '../../../helpers/s3.js'

let server: Promise<S3Server> | undefined
afterAll(async () => (await server)?.stop())

backendContract('S3 under a prefix (s3rver)', async () => {
  server ??= startS3()
  const s3 = await server
  const prefix = `repos/${randomBytes(4).toString('hex')}/`
  const settings = s3.settings(prefix)
  const location = s3.url(prefix)
  return {backend: new S3Backend({location, s3: settings}), async cleanup() {}, location, s3: settings}
})
