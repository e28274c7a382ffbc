/**
 * A second process for the backend contract (backend.ts): it opens the backend of a location with
 * backendFor, as a command would, and does one thing another process could be killed in or race on.
 *   save-slow <location> <key> [MiB]  saves an endless stream, says "saving" after 4 MiB (or MiB), until killed
 *   create <location> <key> <bytes>   waits for a line on stdin, then createExclusive: prints won or lost
 * An S3 location's settings (endpoint, keys) come as JSON in BACKEND_CHILD_S3_SETTINGS.
 * Plain JavaScript on the built dist/ (npm test builds before the suite), as the CLI the other
 * tests run: a child under a TypeScript loader cost ~1 CPU-s to start.
 */
import {once} from 'node:events'
import {createInterface} from 'node:readline'
import {Readable} from 'node:stream'

import {backendFor} from '../../dist/lib/repo/backend-for.js'

const [op, location, key, bytes] = process.argv.slice(2)
const s3 = process.env.BACKEND_CHILD_S3_SETTINGS
const backend = backendFor(s3 ? {location, s3: JSON.parse(s3)} : location)

if (op === 'save-slow') {
  let pushed = 0
  const chunk = Buffer.alloc(1024 * 1024, 0x61)
  const source = new Readable({
    read() {
      // Slow enough that the kill lands mid-save, fast enough to have written megabytes by then.
      setTimeout(() => {
        this.push(chunk)
        pushed += chunk.length
        if (pushed === Number(bytes ?? 4) * chunk.length) process.stdout.write('saving\n')
      }, 5)
    },
  })
  await backend.save(key, source)
  process.stdout.write('saved (should never happen)\n')
} else if (op === 'create') {
  const lines = createInterface({input: process.stdin})
  process.stdout.write('ready\n')
  await once(lines, 'line')
  process.stdout.write((await backend.createExclusive(key, Buffer.from(bytes))) ? 'won\n' : 'lost\n')
  lines.close()
} else {
  throw new Error(`unknown op ${op}`)
}
