// What the benches measure with: a command's wall time, CPU seconds and peak RSS under GNU time,
// the median of repeated runs, and the bytes of a data dir a backup reads. Shared by
// bench/backup.mjs, bench/memory.mjs and bench/s3.mjs.
import {spawnSync} from 'node:child_process'

/**
 * Runs argv under GNU time; returns wall seconds, CPU seconds (user + system, children included),
 * peak RSS (MiB, of the largest process: for a shell pipeline, its largest stage), stdout and
 * stderr (less time's own line). Fails loudly.
 */
export function timed(label, argv, options = {}) {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M %U %S', ...argv], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    ...options,
  })
  if (r.status !== 0) throw new Error(`${label} failed (${r.status}): ${r.stdout.slice(-1000)}${r.stderr.slice(-2000)}`)
  const lines = r.stderr.trimEnd().split('\n')
  const [wall, rssKb, user, sys] = lines.at(-1).split(' ').map(Number)
  return {cpu: user + sys, label, rssMiB: rssKb / 1024, stderr: lines.slice(0, -1).join('\n'), stdout: r.stdout, wall}
}

/** The median of a list of numbers (the mean of the middle two for an even count). */
export function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** Runs of one command summarised: median wall, CPU and peak RSS, and every wall time. */
export function summary(label, runs) {
  return {
    cpu: median(runs.map((r) => r.cpu)),
    label,
    rssMiB: median(runs.map((r) => r.rssMiB)),
    runs: runs.map((r) => r.wall),
    wall: median(runs.map((r) => r.wall)),
  }
}

/** Bytes of the regular files under `dir`, but for the folders a backup leaves out by default. */
export function duBytes(dir, excl = ['shared-cache', 'tmp']) {
  const r = spawnSync(
    'sh',
    [
      '-c',
      `cd '${dir}' && find . -type f ${excl.map((e) => `-not -path './${e}/*'`).join(' ')} -printf '%s\\n' | awk '{s+=$1} END {print s}'`,
    ],
    {encoding: 'utf8'},
  )
  return Number(r.stdout.trim())
}

/** '1GiB', '256MiB', '8G', '5gib' → bytes; NaN when it does not read. */
export function parseSize(text) {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(String(text).trim())
  if (!m) return Number.NaN
  return Number(m[1]) * 1024 ** ' kmgt'.indexOf((m[2] || ' ').toLowerCase())
}

/** Bytes free on the filesystem that holds `dir` (df). */
export function freeBytes(dir) {
  const r = spawnSync('df', ['-B1', '--output=avail', dir], {encoding: 'utf8'})
  return Number(r.stdout.trim().split('\n').at(-1))
}

/** `--name=value` or `--name value` from argv, else the fallback. */
export function argValue(argv, name, fallback) {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith(`--${name}=`)) return argv[i].slice(name.length + 3)
    if (argv[i] === `--${name}` && i + 1 < argv.length && !argv[i + 1].startsWith('--')) return argv[i + 1]
  }

  return fallback
}

/** "<time> <step>: done in <duration>" lines of the plain log → {step: ms}. */
export function stepTimes(log) {
  const steps = {}
  for (const [, step, d] of log.matchAll(/^\S+ ([^:\n]+): done in (\S+)$/gm)) steps[step] = durationMs(d)
  return steps
}

/** src/lib/format.ts's formatDuration read back: '4ms', '8.3s', '1m15s', '1h2m'. */
function durationMs(text) {
  let ms = 0
  for (const [, n, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g))
    ms += Number(n) * {h: 3_600_000, m: 60_000, ms: 1, s: 1000}[unit]
  return ms
}

/**
 * glibc's allocator settings that README's Speed section gives operators: buffers up to 32 MiB
 * (zstd frames) come from malloc's heap, and freed memory stays there for the next ones instead
 * of being unmapped and faulted in again. Not huge pages (glibc.malloc.hugetlb=1): faster still,
 * but a verify of the 5 GiB sparse file then peaked at 346 MiB, past the 256 MiB bound. glibc
 * ignores a name it does not know, silently: bench-tools.test asks ld.so what it read.
 */
/** Whether this Node runs on glibc (musl and macOS have no GLIBC_TUNABLES). */
export function onGlibc() {
  return Boolean(process.report?.getReport().header.glibcVersionRuntime)
}

export const TUNED_MALLOC = 'glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824'

/**
 * The bench's two environments from `env`: `plain` without GLIBC_TUNABLES (glibc's defaults,
 * whatever the developer's shell sets), `tuned` with TUNED_MALLOC; `tuned` is undefined off
 * glibc (musl has no such settings), and the tuned rows are left out.
 */
export function mallocEnvs(env, glibc = onGlibc()) {
  const plain = {...env}
  delete plain.GLIBC_TUNABLES
  return {plain, tuned: glibc ? {...plain, GLIBC_TUNABLES: TUNED_MALLOC} : undefined}
}
