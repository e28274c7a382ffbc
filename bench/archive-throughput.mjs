#!/usr/bin/env node
// Archive core throughput: writeArchive (pack → zstd → age → file) and readArchive (verify, and
// restore to a dir) with each zstd and age implementation, against `tar | zstd | age` on the
// same data. Each run is a child process, so its peak RSS is its own.
//
//   npm run build && node bench/archive-throughput.mjs [--size=512MiB] [--data=DIR] [--dist=DIR] [--level=3]
//
// Data: half random, half text per file (like LIBRARIES.md's figures), in a mix of sizes, kept in
// $TMPDIR/moctl-br-bench-data-<size> between runs. Figures are MB/s (10^6 bytes) of file data.
import {spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const arg = (name, fallback) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback
const dist = resolve(arg('dist', join(root, 'dist')))
const level = Number(arg('level', '3'))

const lib = (p) => import(pathToFileURL(join(dist, 'lib/archive', p)).href)
const job = process.argv[2] === '--child' ? JSON.parse(process.argv[3]) : undefined
const start = job ? () => child(job) : main
await start()

async function main() {
  const sizeArg = arg('size', '512MiB')
  const bytes = Number.parseInt(sizeArg, 10) * (/gib/i.test(sizeArg) ? 2 ** 30 : 2 ** 20)
  const data = resolve(arg('data', join(tmpdir(), `moctl-br-bench-data-${sizeArg}`)))
  if (!existsSync(`${data}.complete`)) makeData(data, bytes)
  const work = mkdtempSync(join(tmpdir(), 'moctl-br-bench-'))
  const {generateIdentity} = await import(pathToFileURL(join(dist, 'lib/archive/age.js')).href)
  const key = await generateIdentity()
  // Warm the page cache, so every run reads from memory.
  spawnSync('sh', ['-c', `tar -C '${data}' -cf - . > /dev/null`])
  const {zstdImplementations} = await import(pathToFileURL(join(dist, 'lib/archive/compress.js')).href)
  const rows = []
  try {
    for (const zstd of zstdImplementations()) {
      for (const age of ['native', 'typage']) {
        if (age === 'typage' && zstd !== zstdImplementations()[0]) continue
        const archive = join(work, `${zstd}-${age}.tar.zst.age`)
        const w = run({age, archive, data, key, mode: 'write', zstd})
        rows.push({...w, label: `write  zstd=${zstd} age=${age}`})
        const v = run({age, archive, data, key, mode: 'verify', zstd})
        rows.push({...v, label: `verify zstd=${zstd} age=${age}`})
        if (age === 'native') {
          const r = run({age, archive, data, dest: join(work, `restore-${zstd}`), key, mode: 'restore', zstd})
          rows.push({...r, label: `restore zstd=${zstd} age=${age}`})
          rmSync(join(work, `restore-${zstd}`), {force: true, recursive: true})
        }

        rmSync(archive, {force: true})
      }
    }

    // The same work with the CLIs, same data, same page cache: the baseline to beat.
    const identityFile = join(work, 'key.txt')
    writeFileSync(identityFile, `${key.identity}\n`)
    const out = join(work, 'cli.tar.zst.age')
    const cliDest = join(work, 'cli-restore')
    const cliRuns = [
      [
        'CLI tar | zstd -T1 | age',
        `tar -C '${data}' -cf - . | zstd -q -${level} -T1 | age -r ${key.recipient} > '${out}'`,
      ],
      [
        'CLI tar | zstd -T2 | age',
        `tar -C '${data}' -cf - . | zstd -q -${level} -T2 | age -r ${key.recipient} > '${out}'`,
      ],
      ['CLI age -d | zstd -d (verify-like)', `age -d -i '${identityFile}' '${out}' | zstd -q -d > /dev/null`],
      [
        'CLI age -d | zstd -d | tar -x',
        `mkdir '${cliDest}' && age -d -i '${identityFile}' '${out}' | zstd -q -d | tar -x -C '${cliDest}'`,
      ],
    ]
    for (const [label, command] of cliRuns) {
      const started = performance.now()
      const cli = spawnSync('/usr/bin/time', ['-f', '%M', 'sh', '-c', command], {encoding: 'utf8'})
      const seconds = (performance.now() - started) / 1000
      if (cli.status !== 0) throw new Error(cli.stderr)
      const rssMiB = Number(cli.stderr.trim().split('\n').at(-1)) / 1024
      rows.push({
        label,
        mbps: bytes / 1e6 / seconds,
        out: label.includes('| age') ? statSync(out).size : undefined,
        rssMiB,
        seconds,
      })
    }
  } finally {
    rmSync(work, {force: true, recursive: true})
  }

  console.log(`\n${(bytes / 1e6).toFixed(0)} MB in ${data}, zstd level ${level}, node ${process.version}`)
  for (const r of rows) {
    console.log(
      `${r.label.padEnd(34)} ${r.mbps.toFixed(0).padStart(5)} MB/s  ${r.seconds.toFixed(2).padStart(6)} s  peak RSS ${r.rssMiB.toFixed(0).padStart(4)} MiB${r.out ? `  → ${(r.out / 1e6).toFixed(0)} MB` : ''}`,
    )
  }
}

function run(job) {
  const r = spawnSync(
    process.execPath,
    [fileURLToPath(import.meta.url), '--child', JSON.stringify(job), `--dist=${dist}`, `--level=${level}`],
    {
      encoding: 'utf8',
      env: {...process.env},
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  if (r.status !== 0) throw new Error(`${job.mode} ${job.zstd}/${job.age} failed`)
  return JSON.parse(r.stdout)
}

async function child(job) {
  const {scanDataDir} = await lib('walk.js')
  const {writeArchive} = await lib('write.js')
  const {readArchive} = await lib('read.js')
  const fs = await import('node:fs')
  const started = performance.now()
  let bytes
  let out
  if (job.mode === 'write') {
    const entries = await scanDataDir(job.data)
    const result = await writeArchive({
      backupId: 'bench',
      encrypt: {recipients: [job.key.recipient], type: 'recipients'},
      entries,
      impl: {age: job.age, zstd: job.zstd},
      level,
      manifestBase: {chain: ['bench'], createdAt: new Date().toISOString(), deleted: [], type: 'full'},
      output: fs.createWriteStream(job.archive),
      root: job.data,
    })
    bytes = result.rawBytes
    out = result.archiveSize
  } else {
    if (job.dest) fs.mkdirSync(job.dest)
    const result = await readArchive({
      decrypt: {identities: [job.key.identity], passphrases: []},
      dest: job.dest,
      impl: {age: job.age, zstd: job.zstd},
      input: fs.createReadStream(job.archive, {highWaterMark: 1024 * 1024}),
    })
    bytes = result.bytes
  }

  const seconds = (performance.now() - started) / 1000
  process.stdout.write(
    JSON.stringify({mbps: bytes / 1e6 / seconds, out, rssMiB: process.resourceUsage().maxRSS / 1024, seconds}),
  )
}

/** A data dir shaped like MO's: a few large objects, many mid-size ones, a crowd of small files. */
function makeData(dir, total) {
  rmSync(dir, {force: true, recursive: true})
  const line = Buffer.from('INSERT INTO orders VALUES (4242, "matrixone", 3.14159, "2026-11-25 04:00:00");\n')
  const file = (path, size) => {
    const half = Math.floor(size / 2)
    const text = Buffer.alloc(size - half)
    for (let i = 0; i < text.length; i += line.length) line.copy(text, i, 0, Math.min(line.length, text.length - i))
    mkdirSync(dirname(path), {recursive: true})
    writeFileSync(path, Buffer.concat([randomBytes(half), text]))
  }

  let left = total
  const plan = [
    [0.5, 64 * 2 ** 20, 'shared'],
    [0.35, 4 * 2 ** 20, 'shared'],
    [0.15, 64 * 1024, 'shared/ckp'],
  ]
  for (const [share, size, sub] of plan) {
    let budget = Math.min(left, Math.round(total * share))
    for (let i = 0; budget > 0; i++) {
      const n = Math.min(size, budget)
      file(join(dir, sub, `0190f3a2-${size}-${String(i).padStart(5, '0')}`), n)
      budget -= n
      left -= n
    }
  }

  writeFileSync(`${dir}.complete`, '')
}
