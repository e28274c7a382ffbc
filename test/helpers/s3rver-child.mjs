/**
 * Runs s3rver 3.7.1 in a process of its own for test/helpers/s3.ts: node s3rver-child.mjs DIR BUCKET.
 * Prints {"port": N} once it listens; stops when its stdin closes (its parent died or stopped it).
 *
 * A process of its own because s3rver has races of its own (a listing that meets an object being
 * deleted fails with an unhandled ENOENT): in the test worker's process they would fail the test
 * run; here they are logged to stderr, and the request in flight fails and is retried as any 500.
 *
 * It adds ListMultipartUploads (GET /bucket?uploads&prefix=) and AbortMultipartUpload
 * (DELETE /bucket/key?uploadId=), which s3rver lacks (501, 405), on s3rver's own store of uploads
 * (`<bucket>/._S3rver_uploads/<uploadId>/` with the key in `key`), answering as the S3 API
 * reference says. These two requests skip s3rver's access key check.
 */
import {readdir, readFile, rm, stat} from 'node:fs/promises'
import {createRequire} from 'node:module'
import {join} from 'node:path'

const [directory, bucket] = process.argv.slice(2)
const S3rver = createRequire(import.meta.url)('s3rver')

const xmlEscape = (s) => s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;')
const errorXml = (code, message) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`

async function listUploads(uploads, prefix) {
  const found = []
  for (const uploadId of await readdir(uploads).catch(() => [])) {
    const keyFile = join(uploads, uploadId, 'key')
    // eslint-disable-next-line no-await-in-loop -- a handful of uploads in a test
    const key = await readFile(keyFile, 'utf8').catch(() => null)
    // eslint-disable-next-line no-await-in-loop
    const info = key === null ? null : await stat(keyFile).catch(() => null)
    if (info && key.startsWith(prefix)) found.push({initiated: info.mtime, key, uploadId})
  }

  return found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
}

async function multipartUploads(ctx, next) {
  const [name, ...rest] = ctx.path.split('/').filter(Boolean)
  const uploads = join(directory, name ?? '', '._S3rver_uploads')
  if (ctx.method === 'GET' && rest.length === 0 && 'uploads' in ctx.query) {
    const prefix = ctx.query.prefix ?? ''
    const found = await listUploads(uploads, prefix)
    ctx.type = 'application/xml'
    ctx.body =
      `<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult><Bucket>${name}</Bucket>` +
      `<Prefix>${xmlEscape(prefix)}</Prefix><IsTruncated>false</IsTruncated>` +
      found
        .map(
          (u) =>
            `<Upload><Key>${xmlEscape(u.key)}</Key><UploadId>${u.uploadId}</UploadId>` +
            `<Initiated>${u.initiated.toISOString()}</Initiated></Upload>`,
        )
        .join('') +
      `</ListMultipartUploadsResult>`
    return
  }

  const {uploadId} = ctx.query
  if (ctx.method === 'DELETE' && rest.length > 0 && uploadId) {
    const there = /^[\da-f]+$/.test(uploadId) && (await stat(join(uploads, uploadId)).catch(() => null))
    if (!there) {
      ctx.status = 404
      ctx.type = 'application/xml'
      ctx.body = errorXml('NoSuchUpload', 'The specified upload does not exist.')
      return
    }

    await rm(join(uploads, uploadId), {force: true, recursive: true})
    ctx.status = 204
    return
  }

  await next()
}

process.on('unhandledRejection', (error) => process.stderr.write(`s3rver: ${error?.message ?? error}\n`))
process.on('uncaughtException', (error) => process.stderr.write(`s3rver: ${error?.message ?? error}\n`))

const app = new S3rver({address: '127.0.0.1', configureBuckets: [{name: bucket}], directory, port: 0, silent: true})
// Before s3rver's router (its last middleware), which answers these two with 501 and 405.
app.middleware.splice(-1, 0, multipartUploads)
const {port} = await app.run()
process.stdout.write(JSON.stringify({port}) + '\n')
process.stdin.resume()
// Closing the server ends the process: nothing else keeps it alive.
process.stdin.on('end', () => {
  process.stdin.destroy()
  app.close().catch(() => {})
})
