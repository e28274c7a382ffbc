// The per-stage CPU profile summary of npm run bench: runs a CLI command under `node --cpu-prof`
// (one .cpuprofile per thread: the main thread and every worker) and sums each sample's time
// into a stage by the frames on its stack.
//
// A sample's stage is the first rule that matches, walking from the leaf frame up to the root,
// on the frame's url and function name: substrings, not exact paths, so that code moving between
// files (worker pools, new modules) still lands in its stage; what matches nothing is "other".
// Self time of native frames (a hash's digest, zstd's compress, a read) is found by their JS
// caller. Idle time is left out. V8 samples by the clock, so on a loaded machine the seconds are
// those a thread was running or waiting for a core: read them as shares of the whole; the process's
// CPU (GNU time) is printed beside them. Not a profiler: a summary to see where to look.
import {spawnSync} from 'node:child_process'
import {mkdirSync, readdirSync, readFileSync} from 'node:fs'
import {join} from 'node:path'

export const STAGES = ['start-up', 'read', 'sha256', 'tar', 'zstd', 'age', 'write', 'gc', 'other']

/** Module loading and oclif's own start-up (its config, plugins, manifest). */
const isStartUp = (u, f) =>
  /node:internal\/modules|@oclif|\/bootstrap\/|cjs-module-lexer/.test(u) || f === '(program)' || f === 'compileFunction'

/** [stage, test(url, functionName)], tried in order on each frame from the leaf up. */
const RULES = [
  ['gc', (u, f) => f === '(garbage collector)'],
  ['zstd', (u, f) => /zstd|node:zlib/i.test(u) || /compress|zstd/i.test(f)],
  [
    'age',
    (u, f) =>
      /age-encryption|@noble|\/age[^/]*\.js|crypto\/cipher|chacha|poly1305/i.test(u) || /chacha|poly1305/i.test(f),
  ],
  ['sha256', (u, f) => /crypto\/hash|\/hash\.js|blake3/.test(u) || /^(digest|update)$/.test(f)],
  ['tar', (u) => /tar-stream|\/tar[^/]*\.js|b4a|streamx/.test(u)],
  [
    'read',
    (u, f) =>
      /\/walk\.js/.test(u) ||
      /^(read|readSync|pread|_read|readFileUtf8|readFileHandle|lstat|stat|fstat|readdir|open)$/.test(f),
  ],
  [
    'write',
    (u, f) => /^(write|writeSync|writev|writevSync|_write|_writev|fsync|fdatasync|syncfs|close|rename)$/.test(f),
  ],
  ['start-up', (u, f) => isStartUp(u, f)],
]

/**
 * Runs `argv` (a node script and its args) under --cpu-prof and GNU time; the stage summary of
 * all its JS threads, and `processMs`: the whole process's CPU (user + system). What the profiles
 * cannot see (native threads: zstd's own workers, libuv's pool; the kernel's side of I/O) is the
 * difference.
 */
export function profileRun(label, argv, dir, options = {}) {
  mkdirSync(dir, {recursive: true})
  const r = spawnSync(
    '/usr/bin/time',
    ['-f', '%U %S', process.execPath, '--cpu-prof', `--cpu-prof-dir=${dir}`, ...argv],
    {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
      ...options,
    },
  )
  if (r.status !== 0) throw new Error(`${label} under --cpu-prof failed (${r.status}): ${r.stderr.slice(-2000)}`)
  const [user, sys] = r.stderr.trimEnd().split('\n').at(-1).split(' ').map(Number)
  return {...summarise(dir), processMs: (user + sys) * 1000}
}

/**
 * Milliseconds of CPU per stage summed over every .cpuprofile in `dir`, the thread count, and the
 * main thread's own CPU (its file is CPU.<date>.<time>.<pid>.0.<seq>.cpuprofile; workers' are
 * numbered from 1).
 */
export function summarise(dir) {
  const ms = Object.fromEntries(STAGES.map((s) => [s, 0]))
  let threads = 0
  let mainMs = 0
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.cpuprofile'))) {
    threads++
    const main = name.split('.').at(-3) === '0'
    const profile = JSON.parse(readFileSync(join(dir, name), 'utf8'))
    const stageOf = stagesByNode(profile.nodes)
    for (let i = 0; i < profile.samples.length; i++) {
      const stage = stageOf.get(profile.samples[i])
      if (!stage) continue
      const t = (profile.timeDeltas[i] ?? 0) / 1000
      ms[stage] += t
      if (main) mainMs += t
    }
  }

  return {mainMs, ms, threads}
}

/**
 * node id → stage (undefined for idle): a frame's own rule, else its caller's. Module loading is
 * a stage only for the frames of the loader itself: as the CLI runs inside its entry module's
 * evaluation, everything descends from it, so a caller search stops there, as "other".
 */
function stagesByNode(nodes) {
  const byId = new Map(nodes.map((n) => [n.id, n]))
  const parent = new Map()
  for (const n of nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const memo = new Map()
  const stageOf = (id, inherited) => {
    const key = `${id}:${inherited}`
    if (memo.has(key)) return memo.get(key)
    const {functionName: f, url: u} = byId.get(id).callFrame
    let stage
    if (f !== '(idle)') {
      const match = RULES.find(([name, test]) => (!inherited || name !== 'start-up') && test(u, f))
      if (match) stage = match[0]
      else if (isStartUp(u, f)) stage = 'other'
      else stage = parent.has(id) ? stageOf(parent.get(id), true) : 'other'
    }

    memo.set(key, stage)
    return stage
  }

  return new Map(nodes.map((n) => [n.id, stageOf(n.id, false)]))
}

/**
 * A markdown table: one row per profile, a column per stage (seconds of samples), their sum and
 * the process's CPU from GNU time. V8 samples by the clock: on a loaded machine a thread waiting
 * for a core is sampled too, so the sampled sum can exceed the process's CPU; read the stages as
 * shares then. Native threads (zstd's workers) are only in the process's CPU.
 */
export function stageTable(rows) {
  const out = [
    `| run | JS threads | ${STAGES.join(' | ')} | sampled | process CPU s (+ not in the samples) |`,
    `|---|---|${STAGES.map(() => '---|').join('')}---|---|`,
  ]
  for (const {label, ms, processMs, threads} of rows) {
    const total = Object.values(ms).reduce((a, b) => a + b, 0)
    const process =
      processMs === undefined
        ? '-'
        : `${(processMs / 1000).toFixed(2)} (+${(Math.max(0, processMs - total) / 1000).toFixed(2)})`
    out.push(
      `| ${label} | ${threads} | ${STAGES.map((s) => (ms[s] / 1000).toFixed(2)).join(' | ')} | ${(total / 1000).toFixed(2)} | ${process} |`,
    )
  }

  return out.join('\n')
}
