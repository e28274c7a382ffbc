#!/usr/bin/env node
// npm run bench: moctl br against `tar | zstd | age` on the same data dir, in the same run.
//
// Data: the team's reference set (../shared/bench/make-mo-data.mjs, 1 GiB) when it is there,
// else this project's own generator (scripts/make-mo-data.mjs, same shape). --size=256MiB for a
// quicker run; --data=DIR to bench an existing data dir. Needs the zstd and age CLIs for the
// baseline (apt-get install -y zstd age). Prints MB/s of data, wall times, peak RSS and ratios.
import {spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'

import {duBytes, timed} from './measure.mjs'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const arg = (name, fallback) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback
const size = arg('size', '1GiB')
const work = mkdtempSync(join(tmpdir(), 'moctl-br-bench-'))
const run = join(root, 'bin', 'run.js')

for (const tool of ['tar', 'zstd', 'age', 'age-keygen']) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
    console.error(`bench: ${tool} not found: apt-get install -y zstd age`)
    process.exit(2)
  }
}

/** Runs a shell command under GNU time (measure.mjs's timed). */
const timedShell = (label, command) => timed(label, ['sh', '-c', command])

try {
  let dataDir = arg('data', '')
  const reference = resolve(root, '..', 'shared', 'bench', 'make-mo-data.mjs')
  const generator = existsSync(reference) ? reference : join(root, 'scripts', 'make-mo-data.mjs')
  if (!dataDir) {
    dataDir = join(work, 'mo-data')
    console.log(`making ${size} of MO-like data with ${generator}`)
    const g = spawnSync(process.execPath, [generator, 'create', dataDir, '--size', size], {stdio: 'inherit'})
    if (g.status !== 0) throw new Error('data generator failed')
  }

  const bytes = duBytes(dataDir)
  const mb = bytes / 1e6
  spawnSync('sh', ['-c', `age-keygen -o '${work}/key' 2>/dev/null`])
  const key = join(work, 'key')
  const recipient = readFileSync(key, 'utf8').match(/public key: (age1\w+)/)[1]
  // Warm the page cache so both sides read from memory, as a second backup of the day would.
  spawnSync('sh', ['-c', `tar -C '${dataDir}' -cf - . > /dev/null`])

  const excludes = '--exclude=./shared-cache --exclude=./tmp'
  const rows = []
  const base = timedShell(
    'tar | zstd -3 -T0 | age',
    `tar -C '${dataDir}' ${excludes} -cf - . | zstd -3 -T0 -q | age -r ${recipient} > '${work}/baseline.tar.zst.age'`,
  )
  rows.push(base)
  const ours = timedShell(
    'moctl br backup',
    `'${process.execPath}' '${run}' br backup --path '${work}/repo' --data-dir '${dataDir}' --recipient ${recipient} --json > '${work}/backup.json'`,
  )
  rows.push(ours)
  const {id} = JSON.parse(readFileSync(join(work, 'backup.json'), 'utf8'))
  mkdirSync(join(work, 'baseline-restore'))
  const baseRestore = timedShell(
    'age -d | zstd -d | tar -x',
    `age -d -i '${key}' '${work}/baseline.tar.zst.age' | zstd -d -q | tar -C '${work}/baseline-restore' -xf -`,
  )
  rows.push(baseRestore)
  const verify = timedShell(
    'moctl br verify',
    `'${process.execPath}' '${run}' br verify ${id} --path '${work}/repo' --identity '${key}' --json > /dev/null`,
  )
  rows.push(verify)
  const restore = timedShell(
    'moctl br restore',
    `'${process.execPath}' '${run}' br restore ${id} --path '${work}/repo' --data-dir '${work}/restored/mo-data' --identity '${key}' --port 1 --json > /dev/null`,
  )
  rows.push(restore)

  // Incremental: what changes between two backups (the generator's mutate), then backed up again.
  let inc
  if (!arg('data', '')) {
    const m = spawnSync(process.execPath, [generator, 'mutate', dataDir], {stdio: 'inherit'})
    if (m.status !== 0) throw new Error('data generator mutate failed')
    spawnSync('sh', ['-c', `tar -C '${dataDir}' -cf - . > /dev/null`])
    inc = timedShell(
      'moctl br backup --type incremental',
      `'${process.execPath}' '${run}' br backup --path '${work}/repo' --data-dir '${dataDir}' --recipient ${recipient} --type incremental --json > '${work}/inc.json'`,
    )
    rows.push(inc)
  }

  // Downtime of a cold backup: a real service (a throwaway mariadbd standing in for MO, stopped
  // and started through --service command; the test suite's own helper) around the same data
  // dir, packed straight from the stopped directory, then with --clone.
  const downtime = await measureDowntime(dataDir, recipient)

  const stored = statSync(join(work, 'repo', 'backups', id, 'data.tar.zst.age')).size
  const baseStored = statSync(join(work, 'baseline.tar.zst.age')).size
  console.log(`\ndata: ${(bytes / 2 ** 20).toFixed(0)} MiB in ${dataDir}; node ${process.version}`)
  console.log('| run | wall s | MB/s | peak RSS MiB |')
  console.log('|---|---|---|---|')
  for (const r of rows)
    console.log(`| ${r.label} | ${r.wall.toFixed(2)} | ${(mb / r.wall).toFixed(0)} | ${r.rssMiB.toFixed(0)} |`)
  console.log(
    `\nbackup: moctl/baseline time ratio ${(ours.wall / base.wall).toFixed(2)} (below 1 = faster than tar | zstd | age)`,
  )
  console.log(`restore: moctl/baseline time ratio ${(restore.wall / baseRestore.wall).toFixed(2)}`)
  console.log(`stored: moctl ${(stored / 2 ** 20).toFixed(1)} MiB, baseline ${(baseStored / 2 ** 20).toFixed(1)} MiB`)
  if (inc) {
    const incRecord = JSON.parse(readFileSync(join(work, 'inc.json'), 'utf8'))
    console.log(
      `incremental: ${(incRecord.archive.size / 2 ** 20).toFixed(1)} MiB stored (${((incRecord.archive.size / stored) * 100).toFixed(1)}% of the full), ` +
        `wall ${inc.wall.toFixed(2)} s = ${((inc.wall / ours.wall) * 100).toFixed(0)}% of the full's (goal: under 20%)`,
    )
  }

  console.log(
    `downtime (service stopped → answering SQL again): plain cold ${(downtime.plain / 1000).toFixed(2)} s, ` +
      `--clone ${(downtime.clone / 1000).toFixed(2)} s (${downtime.reflink ? 'reflinks' : 'plain copies: this filesystem cannot reflink'}), ` +
      `${((downtime.clone / downtime.plain) * 100).toFixed(0)}% of the plain cold backup's`,
  )
} finally {
  if (!process.argv.includes('--keep')) rmSync(work, {force: true, recursive: true})
}

async function measureDowntime(dataDir, recipient) {
  const lib = join(root, '.tmp', 'bench-lib')
  const tsc = spawnSync(
    process.execPath,
    [
      join(root, 'node_modules', 'typescript', 'bin', 'tsc'),
      '--outDir',
      lib,
      '--module',
      'nodenext',
      '--moduleResolution',
      'nodenext',
      // tsconfig.json's target and lib: src uses ES2023's Array methods (findLast)
      '--target',
      'es2022',
      '--lib',
      'es2023',
      '--skipLibCheck',
      join(root, 'test', 'helpers', 'mariadb.ts'),
    ],
    {encoding: 'utf8'},
  )
  if (tsc.status !== 0) throw new Error(`compiling test/helpers/mariadb.ts failed: ${tsc.stdout}${tsc.stderr}`)
  const {startMariadb} = await import(join(lib, 'test', 'helpers', 'mariadb.js'))
  const server = await startMariadb({dir: work})
  try {
    const service = `--service command --stop-cmd "${server.stopCommand}" --start-cmd "${server.startCommand}" --host 127.0.0.1 --port ${server.port} --user root`
    const result = {}
    for (const [name, extra] of [
      ['plain', ''],
      ['clone', '--clone'],
    ]) {
      spawnSync('sh', ['-c', `tar -C '${dataDir}' -cf - . > /dev/null`])
      const out = join(work, `downtime-${name}.json`)
      timedShell(
        `moctl br backup ${extra || '(cold)'} with a service`,
        `'${process.execPath}' '${run}' br backup --path '${work}/repo-downtime' --data-dir '${dataDir}' --recipient ${recipient} ${service} ${extra} --json > '${out}'`,
      )
      const record = JSON.parse(readFileSync(out, 'utf8'))
      result[name] = record.serviceDownMs
      if (record.clone) result.reflink = record.clone.reflink
    }

    return result
  } finally {
    await server.cleanup()
  }
}
