/**
 * A real S3-protocol server on loopback for the tests: s3rver 3.7.1 (file-backed, in a temp dir),
 * with one bucket made for the test; this process and child CLI processes reach it alike.
 *
 * What s3rver is, measured here:
 * - SigV4 signatures are not checked: only the access key id must be one it knows (S3RVER); a
 *   wrong key id is InvalidAccessKeyId (403), a wrong secret passes. A request more than 15
 *   minutes off is RequestTimeTooSkewed (the SDK corrects its clock from the reply and retries).
 * - PUT bodies are stored as sent: an `aws-chunked` body (the SDK's default for streams since
 *   3.729, with a trailing checksum) would be stored with its framing. The backend sends every
 *   body with a known length and its checksum in a header (requestChecksumCalculation
 *   WHEN_REQUIRED), which s3rver stores right and ignores.
 * - Multipart upload (initiate, parts, complete), ranged GET (416 InvalidRange from the end on),
 *   ListObjectsV2 with pagination: yes. Conditional writes (If-None-Match on PUT, If-Match on
 *   DELETE), Object Lock, checksums: ignored or absent. ListMultipartUploads and
 *   AbortMultipartUpload: absent; s3rver-child.mjs adds those two on s3rver's own store of
 *   uploads, so that what a killed upload leaves is listed and removed for real.
 * - It runs in a child process (s3rver-child.mjs): in-process, its own races (an unhandled ENOENT
 *   when a listing meets a deletion) failed the test run.
 *
 * `recorder: true` puts a recording HTTP proxy on loopback in front of it: every request's method,
 * path, query and headers are kept (request-level tests of what s3rver ignores), and `intercept`
 * can answer a request itself (a 412, a 503) instead of passing it on, and `replyHeaders` can
 * change the headers of the server's reply (add the x-amz-checksum-sha256 a store keeps).
 */
import {spawn} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {once} from 'node:events'
import {mkdir} from 'node:fs/promises'
import {createServer, request as httpRequest, type IncomingHttpHeaders, type Server} from 'node:http'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

import type {S3Settings} from '../../src/lib/repo/address.js'

import {tempDir} from './cli.js'

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 's3rver-child.mjs')

/** s3rver's built-in key pair: the only credentials it accepts. */
export const S3RVER_CREDENTIALS = {accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER'}

export interface RecordedRequest {
  body: Buffer
  headers: IncomingHttpHeaders
  method: string
  /** the path, without the query, decoded */
  path: string
  query: URLSearchParams
}

/** What an interceptor answers instead of the server. */
export interface InterceptedReply {
  body?: string
  headers?: Record<string, string>
  status: number
}

export interface S3Server {
  bucket: string
  credentials: typeof S3RVER_CREDENTIALS
  /** the directory s3rver keeps its buckets in */
  directory: string
  /** http://127.0.0.1:PORT: the recorder when there is one, else s3rver itself */
  endpoint: string
  /** answers a request itself when it returns a reply; undefined passes it on */
  intercept?: (request: RecordedRequest) => InterceptedReply | undefined
  /** changes the headers of s3rver's reply to a request (in place) before it is passed back */
  replyHeaders?: (request: RecordedRequest, headers: IncomingHttpHeaders) => void
  /** every request that went through the recorder, in order (empty without one) */
  requests: RecordedRequest[]
  /** settings for a repository at s3://BUCKET/PREFIX on this server */
  settings(prefix?: string): S3Settings
  stop(): Promise<void>
  /** the repository's location for messages and backendFor: s3://BUCKET/PREFIX */
  url(prefix?: string): string
}

export async function startS3(options: {bucket?: string; recorder?: boolean} = {}): Promise<S3Server> {
  const tmp = await tempDir()
  const directory = join(tmp.path, 's3rver')
  await mkdir(directory)
  const bucket = options.bucket ?? `test-${randomBytes(4).toString('hex')}`
  // s3rver 3.7.1 makes list continuation tokens with DES, which Node's OpenSSL 3 has only in its
  // legacy provider: without it every truncated listing (more keys than MaxKeys) is a 500.
  const child = spawn(process.execPath, ['--openssl-legacy-provider', CHILD, directory, bucket], {
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (d) => {
    stderr += d
  })
  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
      if (out.includes('\n')) resolve((JSON.parse(out) as {port: number}).port)
    })
    child.once('exit', (code) => reject(new Error(`s3rver exited (${code}) before listening: ${stderr}`)))
  })
  let endpoint = `http://127.0.0.1:${port}`
  const requests: RecordedRequest[] = []
  let recorder: Server | undefined
  const server: S3Server = {
    bucket,
    credentials: S3RVER_CREDENTIALS,
    directory,
    endpoint,
    requests,
    settings: (prefix = '') => ({
      bucket,
      credentials: {...S3RVER_CREDENTIALS},
      endpoint: server.endpoint,
      forcePathStyle: true,
      prefix: prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`,
      region: 'us-east-1',
    }),
    async stop() {
      if (recorder)
        await new Promise((resolve) => {
          recorder!.close(resolve)
        })
      const exited = once(child, 'exit')
      child.stdin.end()
      await exited
      await tmp.cleanup()
    },
    url: (prefix = '') => `s3://${bucket}/${prefix}`,
  }
  if (options.recorder) {
    recorder = await startRecorder(port, server)
    const address = recorder.address()
    endpoint = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`
    server.endpoint = endpoint
  }

  return server
}

/** A loopback HTTP proxy to s3rver that records every request and lets the test answer some itself. */
async function startRecorder(port: number, server: S3Server): Promise<Server> {
  const proxy = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1')
      const recorded: RecordedRequest = {
        body: Buffer.concat(chunks),
        headers: req.headers,
        method: req.method ?? 'GET',
        path: decodeURIComponent(url.pathname),
        query: url.searchParams,
      }
      server.requests.push(recorded)
      const reply = server.intercept?.(recorded)
      if (reply) {
        res.writeHead(reply.status, {'content-type': 'application/xml', ...reply.headers})
        res.end(reply.body ?? '')
        return
      }

      const upstream = httpRequest(
        {headers: req.headers, host: '127.0.0.1', method: req.method, path: req.url, port},
        (answer) => {
          server.replyHeaders?.(recorded, answer.headers)
          res.writeHead(answer.statusCode ?? 502, answer.headers)
          answer.pipe(res)
        },
      )
      upstream.on('error', () => res.destroy())
      upstream.end(recorded.body)
    })
  })
  await new Promise<void>((resolve) => {
    proxy.listen(0, '127.0.0.1', resolve)
  })
  return proxy
}

/** An S3 error body, as the S3 API reference shows it. */
export const s3ErrorXml = (code: string, message: string) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>test</RequestId></Error>`
