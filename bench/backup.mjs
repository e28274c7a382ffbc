#!/usr/bin/env node
// npm run bench: moctl br against `tar | zstd | age` on the same data dir, in the same run.
//
// Prints one table: full backup, incremental, verify and restore (and backup/restore at
// --parallelism 1 and 2; backup, verify and restore again with README's allocator settings,
// "malloc tuned", on glibc), each with our median wall time, the reference pipeline's median wall
// time from the same rounds, the ratio, the issue-11 goal beside it (pass/miss), MB/s, peak RSS
// and CPU seconds (user + system: the machines here are shared, CPU-s moves less than wall).
// Each figure is the median of --runs=N rounds (default 3), ours interleaved with the reference.
// Then: `br list` on a repository of 100 backups (goal 0.5 s) beside `--version` (oclif's floor),
// the incremental's breakdown by step (from the plain log), a per-stage CPU profile of one
// backup and one restore (bench/profile.mjs) with the parallel model it implies, and the
// downtime of a cold backup around a real service, plain and --clone (--no-downtime skips it).
//
// Data: the team's reference set (../shared/bench/make-mo-data.mjs, 1 GiB) when it is there,
// else this project's own generator (scripts/make-mo-data.mjs, same shape). --size=256MiB for a
// quicker run; --data=DIR to bench an existing data dir (no incremental then: it is not mutated).
// --only=incremental: the full backups (and the reference pipeline beside them) and the
// incrementals, with the incremental's breakdown; no verify, restore, list, profile or downtime.
// Needs the zstd and age CLIs for the reference (apt-get install -y zstd age).
import {spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'

import {argValue, duBytes, mallocEnvs, median, stepTimes, summary, timed} from './measure.mjs'
import {profileRun, stageTable} from './profile.mjs'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const argv = process.argv.slice(2)
if (argv.includes('--help') || argv.includes('-h')) {
  console.log(
    'usage: node bench/backup.mjs [--runs=3] [--size=1GiB | --data=DIR] [--only=incremental] [--no-downtime] [--keep]\n' +
      'after npm run build; see the header of bench/backup.mjs for what each run measures',
  )
  process.exit(0)
}

const only = argValue(argv, 'only', '')
if (only !== '' && only !== 'incremental') {
  console.error(`bench: --only=${only}: the one subset is --only=incremental (full and incremental backups)`)
  process.exit(2)
}

const onlyIncremental = only === 'incremental'
const size = argValue(argv, 'size', '1GiB')
const runs = Number(argValue(argv, 'runs', '3'))
if (!Number.isInteger(runs) || runs < 1) {
  console.error(`bench: --runs=${argValue(argv, 'runs', '')} is not a count of runs: pass --runs=3`)
  process.exit(2)
}

const work = mkdtempSync(join(tmpdir(), 'moctl-br-bench-'))
const run = join(root, 'bin', 'run.js')
const GOAL = {backup: 1, incremental: 0.15, list: 0.5, parallel: 0.8, restore: 1.2, rssMiB: 256, verify: 1}

for (const tool of ['tar', 'zstd', 'age', 'age-keygen']) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
    console.error(`bench: ${tool} not found: apt-get install -y zstd age`)
    process.exit(2)
  }
}

// The bench reads none of the developer's own settings, keys or cached manifests. It runs with
// glibc's default allocator settings, and backup, verify and restore again with README's
// (TUNED_MALLOC, the rows "malloc tuned"; on glibc only).
const base = {...process.env, XDG_CACHE_HOME: join(work, 'cache'), XDG_CONFIG_HOME: join(work, 'config')}
for (const key of Object.keys(base)) if (key.startsWith('MOCTL_BR_')) delete base[key]
const {plain: env, tuned: tunedEnv} = mallocEnvs(base)
const tuned = tunedEnv && {env: tunedEnv}

/**
 * Runs a shell command under GNU time (measure.mjs's timed), after `sync`: the previous run's
 * dirty pages (a restored GiB) are written back first, not during this run's fsync.
 */
function timedShell(label, command, options = {}) {
  spawnSync('sync')
  return timed(label, ['sh', '-c', command], {env, ...options})
}

const cli = `'${process.execPath}' '${run}' br`
const warm = (dir) => spawnSync('sh', ['-c', `tar -C '${dir}' -cf - . > /dev/null`])

try {
  let dataDir = argValue(argv, 'data', '')
  const reference = resolve(root, '..', 'shared', 'bench', 'make-mo-data.mjs')
  const generator = existsSync(reference) ? reference : join(root, 'scripts', 'make-mo-data.mjs')
  const generated = !dataDir
  if (generated) {
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
  const restoreHasParallelism = /--parallelism/.test(
    spawnSync(process.execPath, [run, 'br', 'restore', '--help'], {encoding: 'utf8', env}).stdout,
  )
  // Warm the page cache so both sides read from memory, as a second backup of the day would.
  warm(dataDir)

  const excludes = '--exclude=./shared-cache --exclude=./tmp'
  const m = new Map()
  const add = (name, result) => m.set(name, [...(m.get(name) ?? []), result])
  const backupCmd = (extra) =>
    `${cli} backup --path '${work}/repo' --data-dir '${dataDir}' --recipient ${recipient} ${extra} --json`
  const verifyCmd = (id) => `${cli} verify ${id} --path '${work}/repo' --identity '${key}' --json > /dev/null`
  const restoreCmd = (id, target, extra) =>
    `${cli} restore ${id} --path '${work}/repo' --data-dir '${target}' --identity '${key}' ${extra} --json > /dev/null`
  let fullId
  for (let round = 1; round <= runs; round++) {
    console.log(`round ${round}/${runs}`)
    add(
      'ref backup',
      timedShell(
        'tar | zstd -3 -T0 | age',
        `tar -C '${dataDir}' ${excludes} -cf - . | zstd -3 -T0 -q | age -r ${recipient} > '${work}/baseline.tar.zst.age'`,
      ),
    )
    const full = timedShell('moctl br backup', backupCmd(''))
    add('backup', full)
    const {id} = JSON.parse(full.stdout)
    fullId ??= id
    if (onlyIncremental) continue
    if (tuned) add('backup tuned', timedShell('moctl br backup, malloc tuned', backupCmd(''), tuned))
    for (const n of [1, 2])
      add(`backup p${n}`, timedShell(`backup --parallelism ${n}`, backupCmd(`--parallelism ${n}`)))
    add(
      'ref verify',
      timedShell(
        'age -d | zstd -d > /dev/null',
        `age -d -i '${key}' '${work}/baseline.tar.zst.age' | zstd -d -q > /dev/null`,
      ),
    )
    add('verify', timedShell('moctl br verify', verifyCmd(id)))
    if (tuned) add('verify tuned', timedShell('moctl br verify, malloc tuned', verifyCmd(id), tuned))
    const target = join(work, 'restored')
    rmSync(target, {force: true, recursive: true})
    mkdirSync(target)
    add(
      'ref restore',
      timedShell(
        'age -d | zstd -d | tar -x',
        `age -d -i '${key}' '${work}/baseline.tar.zst.age' | zstd -d -q | tar -C '${target}' -xf -`,
      ),
    )
    rmSync(target, {force: true, recursive: true})
    add('restore', timedShell('moctl br restore', restoreCmd(id, join(target, 'mo-data'), '')))
    if (tuned) {
      rmSync(target, {force: true, recursive: true})
      add(
        'restore tuned',
        timedShell('moctl br restore, malloc tuned', restoreCmd(id, join(target, 'mo-data'), ''), tuned),
      )
    }

    if (restoreHasParallelism) {
      for (const n of [1, 2]) {
        rmSync(target, {force: true, recursive: true})
        add(
          `restore p${n}`,
          timedShell(`restore --parallelism ${n}`, restoreCmd(id, join(target, 'mo-data'), `--parallelism ${n}`)),
        )
      }
    }

    rmSync(target, {force: true, recursive: true})
  }

  const stored = statSync(join(work, 'repo', 'backups', fullId, 'data.tar.zst.age')).size
  const baseStored = statSync(join(work, 'baseline.tar.zst.age')).size

  // Incremental: the generator's mutate (5% new, 3% deleted, WAL appended), then --runs
  // incrementals on the first full, each logged in plain mode (stderr is a pipe) for its steps.
  let incBreakdown
  let incStored
  if (generated) {
    const mu = spawnSync(process.execPath, [generator, 'mutate', dataDir], {stdio: 'inherit'})
    if (mu.status !== 0) throw new Error('data generator mutate failed')
    warm(dataDir)
    const incCmd = `${cli} backup --path '${work}/repo' --data-dir '${dataDir}' --recipient ${recipient} --type incremental --base ${fullId}`
    const steps = []
    for (let round = 1; round <= runs; round++) {
      const r = timedShell('moctl br backup --type incremental', incCmd)
      add('incremental', r)
      steps.push({...stepTimes(r.stderr), wall: r.wall})
      incStored ??= r.stdout.trim()
    }

    // Once more with an empty manifest cache: the base's manifest is read and decrypted.
    const cold = timedShell('incremental, no cached manifest', `${incCmd} --identity '${key}'`, {
      env: {...env, XDG_CACHE_HOME: join(work, 'cache-empty')},
    })
    incBreakdown = {cold: {...stepTimes(cold.stderr), wall: cold.wall}, steps}
    const record = JSON.parse(readFileSync(join(work, 'repo', 'backups', incStored, 'backup.json'), 'utf8'))
    incStored = record.archive.size
  }

  const list = onlyIncremental ? undefined : listBench()

  // Results
  const s = (name) => (m.has(name) ? summary(name, m.get(name)) : undefined)
  const fmtRatio = (x, goal) => `${x.toFixed(2)} | <= ${goal} ${x <= goal ? 'pass' : 'MISS'}`
  console.log(
    `\ndata: ${(bytes / 2 ** 20).toFixed(0)} MiB in ${dataDir}; node ${process.version}; median of ${runs} runs`,
  )
  console.log('| run | ours s | reference s | ratio | goal | MB/s | peak RSS MiB | CPU s | runs (wall s) |')
  console.log('|---|---|---|---|---|---|---|---|---|')
  const row = (label, ours, ref, ratio, goal) => {
    const rss = ours.rssMiB <= GOAL.rssMiB ? '' : ` MISS (<= ${GOAL.rssMiB})`
    console.log(
      `| ${label} | ${ours.wall.toFixed(2)} | ${ref ? ref.wall.toFixed(2) : '-'} | ${ratio === undefined ? '- | -' : fmtRatio(ratio, goal)} | ` +
        `${(mb / ours.wall).toFixed(0)} | ${ours.rssMiB.toFixed(0)}${rss} | ${ours.cpu.toFixed(1)} | ${ours.runs.map((w) => w.toFixed(2)).join(', ')} |`,
    )
  }

  const ref = {backup: s('ref backup'), restore: s('ref restore'), verify: s('ref verify')}
  row(String.raw`tar \| zstd -3 -T0 \| age`, ref.backup)
  row('moctl br backup', s('backup'), ref.backup, s('backup').wall / ref.backup.wall, GOAL.backup)
  /** The same run with TUNED_MALLOC, when measured. */
  const tunedRow = (kind, reference, goal) =>
    m.has(`${kind} tuned`) &&
    row(`moctl br ${kind}, malloc tuned`, s(`${kind} tuned`), reference, s(`${kind} tuned`).wall / reference.wall, goal)
  tunedRow('backup', ref.backup, GOAL.backup)
  if (m.has('incremental')) {
    const inc = s('incremental')
    row(
      'backup --type incremental (ratio: of our full)',
      inc,
      ref.backup,
      inc.wall / s('backup').wall,
      GOAL.incremental,
    )
  }

  /** The --parallelism 1 and 2 rows of `kind` (backup, restore) against `reference`, and N=2 / N=1. */
  const parallelRows = (kind, reference, goal) => {
    for (const n of [1, 2])
      row(`${kind} --parallelism ${n}`, s(`${kind} p${n}`), reference, s(`${kind} p${n}`).wall / reference.wall, goal)
    const ratio = s(`${kind} p2`).wall / s(`${kind} p1`).wall
    console.log(`| ${kind} N=2 / N=1 | | | ${fmtRatio(ratio, GOAL.parallel)} | | | | |`)
  }

  if (!onlyIncremental) {
    row(String.raw`age -d \| zstd -d > /dev/null`, ref.verify)
    row('moctl br verify', s('verify'), ref.verify, s('verify').wall / ref.verify.wall, GOAL.verify)
    tunedRow('verify', ref.verify, GOAL.verify)
    row(String.raw`age -d \| zstd -d \| tar -x`, ref.restore)
    row('moctl br restore', s('restore'), ref.restore, s('restore').wall / ref.restore.wall, GOAL.restore)
    tunedRow('restore', ref.restore, GOAL.restore)
    parallelRows('backup', ref.backup, GOAL.backup)
    if (restoreHasParallelism) parallelRows('restore', ref.restore, GOAL.restore)
    else
      console.log('| restore --parallelism 1, 2 | n/a: restore has no --parallelism flag in this build | | | | | | |')
    console.log(
      `| br list, 100 backups | ${list.list.toFixed(2)} | | ${list.list <= GOAL.list ? 'pass' : 'MISS'} | <= ${GOAL.list} s | | | | |`,
    )
    console.log(
      `| br list --json, 100 backups | ${list.json.toFixed(2)} | | ${list.json <= GOAL.list ? 'pass' : 'MISS'} | <= ${GOAL.list} s | | | | |`,
    )
    console.log(`| moctl --version (oclif's floor) | ${list.version.toFixed(2)} | | | | | | | |`)
    console.log(`| node -e 0 (node's floor) | ${list.node.toFixed(2)} | | | | | | | |`)
  }

  console.log(`stored: moctl ${(stored / 2 ** 20).toFixed(1)} MiB, reference ${(baseStored / 2 ** 20).toFixed(1)} MiB`)
  if (incBreakdown) printIncremental(incBreakdown, incStored, stored)

  if (!onlyIncremental) {
    // One backup and one restore under --cpu-prof: CPU by stage, and what it says of N cores.
    console.log(
      '\nprofile by stage (seconds sampled, every JS thread; bench/profile.mjs maps frames to stages; native threads only in the process CPU):',
    )
    const prof = [
      {
        label: 'backup',
        ...profileRun('backup', [run, 'br', ...splitArgs(backupCmd('')).slice(3)], join(work, 'prof-backup'), {env}),
      },
      {
        label: 'restore',
        ...profileRun(
          'restore',
          [
            run,
            'br',
            'restore',
            fullId,
            '--path',
            join(work, 'repo'),
            '--data-dir',
            join(work, 'prof-restored'),
            '--identity',
            key,
            '--json',
          ],
          join(work, 'prof-restore'),
          {env},
        ),
      },
    ]
    console.log(stageTable(prof))
    for (const pr of prof) {
      // CPU from GNU time (samples count waiting for a core too); the main thread's part of it is
      // its share of the samples, which also holds its waits on zstd's native workers (serial).
      const sampled = Object.values(pr.ms).reduce((a, b) => a + b, 0)
      const total = pr.processMs / 1000
      const main = total * (pr.mainMs / sampled)
      console.log(
        `${pr.label}: ${(total / (bytes / 1e9)).toFixed(1)} CPU-s per GB; main thread ~${main.toFixed(1)} of ${total.toFixed(1)} CPU-s; ` +
          `model wall ≈ max(main, CPU/N) on idle cores: ${[1, 2, 8].map((n) => `N=${n} ${modelWall(main, total, n).toFixed(1)} s`).join(', ')}`,
      )
    }

    if (!argv.includes('--no-downtime')) {
      // Downtime of a cold backup: a real service (a throwaway mariadbd standing in for MO, stopped
      // and started through --service command; the test suite's own helper) around the same data
      // dir, packed straight from the stopped directory, then with --clone.
      const downtime = await measureDowntime(dataDir, recipient)
      console.log(
        `\ndowntime (service stopped → answering SQL again): plain cold ${(downtime.plain / 1000).toFixed(2)} s, ` +
          `--clone ${(downtime.clone / 1000).toFixed(2)} s (${downtime.reflink ? 'reflinks' : 'plain copies: this filesystem cannot reflink'}), ` +
          `${((downtime.clone / downtime.plain) * 100).toFixed(0)}% of the plain cold backup's`,
      )
    }
  }
} finally {
  if (argv.includes('--keep')) {
    console.log(`kept ${work}`)
  } else {
    rmSync(work, {force: true, recursive: true})
  }
}

/** The wall time N cores would give: the main thread's part runs alone, the rest spreads over N. */
function modelWall(mainS, totalS, n) {
  return Math.max(mainS, totalS / n)
}

/** The words of a command line built above (no quoting inside the values but '…'). */
function splitArgs(command) {
  return [...command.matchAll(/'([^']*)'|(\S+)/g)].map((x) => x[1] ?? x[2])
}

function printIncremental(breakdown, incStored, stored) {
  console.log(
    `\nincremental: ${(incStored / 2 ** 20).toFixed(1)} MiB stored (${((incStored / stored) * 100).toFixed(1)}% of the full's bytes); ` +
      'where its wall time goes (ms, median; start-up and exit = wall less the steps):',
  )
  printBreakdown(breakdown)
}

function printBreakdown({cold, steps}) {
  const names = [...new Set([...Object.keys(cold), ...steps.flatMap((x) => Object.keys(x))])].filter(
    (n) => n !== 'wall',
  )
  const col = (x) => {
    const inSteps = names.reduce((a, n) => a + (x[n] ?? 0), 0)
    return {...x, 'start-up and exit': x.wall * 1000 - inSteps}
  }

  const rows = steps.map((x) => col(x))
  const c = col(cold)
  console.log('| step | cached manifest (median) | no cached manifest |')
  console.log('|---|---|---|')
  for (const n of [...names, 'start-up and exit'])
    console.log(`| ${n} | ${median(rows.map((r) => r[n] ?? 0)).toFixed(0)} | ${(c[n] ?? 0).toFixed(0)} |`)
  console.log(`| wall | ${median(steps.map((r) => r.wall * 1000)).toFixed(0)} | ${(cold.wall * 1000).toFixed(0)} |`)
}

/**
 * `br list` on a repository of 100 small backups (made in process with the library, as the
 * packer writes them), as a table and with --json; `--version` and a bare node beside them.
 */
function listBench() {
  const repo = join(work, 'repo-100')
  const made = spawnSync(process.execPath, [join(root, 'bench', 'make-repo.mjs'), repo, '100'], {encoding: 'utf8', env})
  if (made.status !== 0) throw new Error(`making a repository of 100 backups failed: ${made.stderr}`)
  const n = Math.max(runs, 3)
  return {
    json: medianWall('br list --json', `${cli} list --path '${repo}' --json > /dev/null`, n),
    list: medianWall('br list', `${cli} list --path '${repo}' > /dev/null`, n),
    node: medianWall('node -e 0', `'${process.execPath}' -e 0`, n),
    version: medianWall('moctl --version', `'${process.execPath}' '${run}' --version > /dev/null`, n),
  }
}

function medianWall(label, command, count) {
  return median(Array.from({length: count}, () => timedShell(label, command).wall))
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
  const {startMariadb} = await import(pathToFileURL(join(lib, 'test', 'helpers', 'mariadb.js')).href)
  const server = await startMariadb({dir: work})
  try {
    const service = `--service command --stop-cmd "${server.stopCommand}" --start-cmd "${server.startCommand}" --host 127.0.0.1 --port ${server.port} --user root`
    const result = {}
    for (const [name, extra] of [
      ['plain', ''],
      ['clone', '--clone'],
    ]) {
      warm(dataDir)
      const out = join(work, `downtime-${name}.json`)
      timedShell(
        `moctl br backup ${extra || '(cold)'} with a service`,
        `${cli} backup --path '${work}/repo-downtime' --data-dir '${dataDir}' --recipient ${recipient} ${service} ${extra} --json > '${out}'`,
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
