#!/usr/bin/env node
// npm run bench:s3 (and part of npm run bench): backup and restore throughput to an S3 repository
// on loopback next to the filesystem backend's, the same data in the same run.
//
// The S3 server is s3rver (the devDependency the tests use), in a process of its own
// (test/helpers/s3rver-child.mjs), file-backed in a temp dir on the same disk: the figures say
// what the S3 path costs (the SDK, HTTP, multipart, one stream), not what a network costs.
// Data: this project's generator (scripts/make-mo-data.mjs), --size=256MiB by default;
// --data=DIR to bench an existing data dir. Prints MB/s of data (10^6 bytes), wall times and peak
// RSS. Needs the build (npm run build) and GNU time (/usr/bin/time).
import {spawn, spawnSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'

import {duBytes, timed} from './measure.mjs'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const arg = (name, fallback) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback
const size = arg('size', '256MiB')
const work = mkdtempSync(join(tmpdir(), 'moctl-br-bench-s3-'))
const run = join(root, 'bin', 'run.js')
const bucket = 'bench'

/** Runs the CLI under GNU time (measure.mjs's timed). */
const timedCli = (label, args) => timed(label, [process.execPath, run, ...args])

/** s3rver in its own process; resolves with its port and a stop(). */
async function startS3rver(directory) {
  mkdirSync(directory)
  // s3rver's truncated listings use DES, which Node's OpenSSL 3 keeps in its legacy provider.
  const child = spawn(
    process.execPath,
    ['--openssl-legacy-provider', join(root, 'test', 'helpers', 's3rver-child.mjs'), directory, bucket],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  )
  const port = await new Promise((resolvePort, reject) => {
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
      if (out.includes('\n')) resolvePort(JSON.parse(out).port)
    })
    child.once('exit', (code) => reject(new Error(`s3rver exited (${code}) before listening`)))
  })
  return {
    port,
    async stop() {
      const exited = new Promise((r) => {
        child.once('exit', r)
      })
      child.stdin.end()
      await exited
    },
  }
}

let s3
try {
  let dataDir = arg('data', '')
  if (!dataDir) {
    dataDir = join(work, 'mo-data')
    console.log(`making ${size} of MO-like data with scripts/make-mo-data.mjs`)
    const g = spawnSync(
      process.execPath,
      [join(root, 'scripts', 'make-mo-data.mjs'), 'create', dataDir, '--size', size],
      {
        stdio: 'inherit',
      },
    )
    if (g.status !== 0) throw new Error('data generator failed')
  }

  const mb = duBytes(dataDir) / 1e6
  const {generateKeyFile} = await import(join(root, 'dist', 'lib', 'keys.js'))
  const {identityFile, recipient} = await generateKeyFile(join(work, 'reader.key'))
  s3 = await startS3rver(join(work, 's3rver'))
  const secretFile = join(work, 's3.secret')
  writeFileSync(secretFile, 'S3RVER\n', {mode: 0o600})
  const s3Repo = [
    '--path',
    `s3://${bucket}/mo`,
    '--endpoint',
    `http://127.0.0.1:${s3.port}`,
    '--force-path-style',
    '--region',
    'us-east-1',
    '--access-key-id',
    'S3RVER',
    '--secret-access-key-file',
    secretFile,
  ]
  const repos = [
    ['filesystem', ['--path', join(work, 'repo')]],
    ['S3 (s3rver, loopback)', s3Repo],
  ]
  // Warm the page cache so both read the data dir from memory.
  spawnSync('sh', ['-c', `tar -C '${dataDir}' -cf - . > /dev/null`])

  const rows = []
  for (const [name, repo] of repos) {
    const backup = timedCli(`backup to ${name}`, [
      'br',
      'backup',
      ...repo,
      '--data-dir',
      dataDir,
      '--recipient',
      recipient,
      '--port',
      '1',
      '--quiet',
      '--json',
    ])
    const {archive, id} = JSON.parse(backup.stdout)
    const restore = timedCli(`restore from ${name}`, [
      'br',
      'restore',
      id,
      ...repo,
      '--data-dir',
      join(work, `restored-${rows.length}`, 'mo-data'),
      '--identity',
      identityFile,
      '--port',
      '1',
      '--quiet',
      '--json',
    ])
    rows.push({...backup, stored: archive.size}, restore)
    rmSync(join(work, `restored-${rows.length - 2}`), {force: true, recursive: true})
  }

  console.log(`\ndata: ${mb.toFixed(0)} MB (${(mb / 1.048_576).toFixed(0)} MiB) in ${dataDir}; node ${process.version}`)
  console.log('| run | wall s | MB/s of data | peak RSS MiB |')
  console.log('|---|---|---|---|')
  for (const r of rows)
    console.log(`| ${r.label} | ${r.wall.toFixed(2)} | ${(mb / r.wall).toFixed(0)} | ${r.rssMiB.toFixed(0)} |`)
  const [fsBackup, fsRestore, s3Backup, s3Restore] = rows
  console.log(
    `\nS3/filesystem time ratio: backup ${(s3Backup.wall / fsBackup.wall).toFixed(2)}, restore ${(s3Restore.wall / fsRestore.wall).toFixed(2)}; ` +
      `stored ${(fsBackup.stored / 2 ** 20).toFixed(1)} MiB`,
  )
} finally {
  await s3?.stop()
  if (!process.argv.includes('--keep')) rmSync(work, {force: true, recursive: true})
}
