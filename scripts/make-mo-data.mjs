#!/usr/bin/env node
// The project's own deterministic generator of a MatrixOne-like data directory (mo-data/), for
// the demo, the tests and the benchmarks. Same seed and size: the same bytes, names and mtimes.
//
//   node scripts/make-mo-data.mjs create DIR [--size 64MiB] [--seed 1]
//   node scripts/make-mo-data.mjs mutate DIR [--seed 2] [--add 5%] [--gc 3%] [--wal 16MiB]
//
// Layout, after a standalone MO's mo-data/:
//   shared/<uuid>_00000          write-once object files, 4 KiB .. 16 MiB, column-like content
//   shared/ckp/meta_<s>_<e>.ckp  checkpoints; shared/gc/gc_<s>_<e>.ckp
//   local/hk_data, etl/sys/…     small mutable files
//   logservice-data/<uuid>/wal-NNNNNN.log   the WAL, appended in place (segments of 1/32 of the set)
//   shared-cache/, tmp/          caches a backup leaves out
// `mutate` is what happens between two backups: new objects and a checkpoint, some objects
// deleted by GC, the newest WAL segment appended to.
import {appendFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

export function parseSize(s, fallback) {
  if (s === undefined) return fallback
  if (typeof s === 'number') return s
  const m = /^(\d+(?:\.\d+)?)\s*(b|kib|mib|gib)?$/i.exec(s)
  if (!m) throw new Error(`bad size: ${s} (e.g. 64MiB, 1GiB)`)
  return Math.round(Number(m[1]) * {b: 1, gib: 1024 ** 3, kib: 1024, mib: 1024 ** 2}[(m[2] ?? 'b').toLowerCase()])
}

const pct = (s, fallback) =>
  s === undefined ? fallback : typeof s === 'number' ? s : Number(String(s).replace('%', '')) / 100

// xorshift32: fast and deterministic.
function rng(seed) {
  let x = (seed * 2_654_435_761) >>> 0 || 1
  const next = () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x
  }

  const r = () => next() / 4_294_967_296
  r.u32 = next
  return r
}

function generator(seed) {
  const rand = rng(seed)
  const hex = (n) => Array.from({length: n}, () => Math.floor(rand() * 16).toString(16)).join('')
  const words = Array.from({length: 512}, () => hex(4 + Math.floor(rand() * 8)))
  // A deterministic clock for names and mtimes: each write is one second after the last.
  let clock = 1_764_000_000 + seed * 100_000
  return {
    // Column-like blocks: sorted ints, dictionary strings, floats, and ~15% incompressible
    // pages (already-compressed data), as real object files have.
    bytes(size) {
      const buf = Buffer.allocUnsafe(size)
      let off = 0
      let key = Math.floor(rand() * 1e6)
      while (off < size) {
        if (rand() < 0.15) {
          const n = Math.min(size - off, 4096)
          for (let i = 0; i < n; i++) buf[off + i] = rand.u32() & 255
          off += n
        } else {
          const end = Math.min(size, off + 4096)
          while (off < end) {
            key += 1 + Math.floor(rand() * 3)
            off += buf.write(
              `${key}|${words[Math.floor(rand() * words.length)]}|${(rand() * 1000).toFixed(2)}\n`,
              off,
              end - off,
            )
          }
        }
      }

      return buf
    },
    objectSize: (maxLeft) => Math.max(1, Math.min(Math.round(4096 * 4096 ** rand()), maxLeft)),
    rand,
    tick: () => ++clock,
    uuid: () => `${hex(8)}-${hex(4)}-7${hex(3)}-${hex(4)}-${hex(12)}`,
  }
}

function write(g, path, bytes) {
  writeFileSync(path, bytes)
  const t = g.tick()
  utimesSync(path, t, t)
}

function ckpName(g) {
  const s = g.tick()
  return `${s}000000-1_${s + 60}000000-1.ckp`
}

export function createMoData(dir, options = {}) {
  if (existsSync(dir) && readdirSync(dir).length > 0) throw new Error(`${dir} is not empty`)
  const total = parseSize(options.size, 64 * 1024 ** 2)
  const g = generator(options.seed ?? 1)
  const shared = join(dir, 'shared')
  const wal = join(dir, 'logservice-data', g.uuid())
  for (const d of [
    join(shared, 'ckp'),
    join(shared, 'gc'),
    join(dir, 'local'),
    join(dir, 'etl', 'sys'),
    wal,
    join(dir, 'shared-cache'),
    join(dir, 'tmp'),
  ]) {
    mkdirSync(d, {recursive: true})
  }

  let left = Math.round(total * 0.9)
  while (left > 0) {
    const size = g.objectSize(left)
    write(g, join(shared, `${g.uuid()}_00000`), g.bytes(size))
    left -= size
  }

  for (let i = 0; i < 8; i++) {
    write(g, join(shared, 'ckp', `meta_${ckpName(g)}`), g.bytes(64 * 1024))
    write(g, join(shared, 'gc', `gc_${ckpName(g)}`), g.bytes(16 * 1024))
  }

  write(g, join(dir, 'local', 'hk_data'), g.bytes(4096))
  write(g, join(dir, 'etl', 'sys', 'statement_info.csv'), g.bytes(512 * 1024))
  write(g, join(dir, 'shared-cache', 'cached-object'), g.bytes(64 * 1024))
  // WAL segments scale with the data set (1/32 of it, 256 KiB to 64 MiB), so that a small set,
  // like a large one, has several: an incremental stores the bytes appended to the last one.
  const segment = Math.min(64 * 1024 ** 2, Math.max(256 * 1024, Math.round(total / 32)))
  let walLeft = total - Math.round(total * 0.9)
  for (let i = 0; walLeft > 0; i++) {
    const size = Math.min(walLeft, segment)
    write(g, join(wal, `wal-${String(i).padStart(6, '0')}.log`), g.bytes(size))
    walLeft -= size
  }
}

export function mutateMoData(dir, options = {}) {
  const g = generator(options.seed ?? 2)
  const shared = join(dir, 'shared')
  const objects = readdirSync(shared)
    .filter((f) => /_\d{5}$/.test(f))
    .sort()
  let objectBytes = 0
  for (const f of objects) objectBytes += statSync(join(shared, f)).size
  let add = Math.round(objectBytes * pct(options.add, 0.05))
  while (add > 0) {
    const size = g.objectSize(add)
    write(g, join(shared, `${g.uuid()}_00000`), g.bytes(size))
    add -= size
  }

  // At least one object when GC is asked for at all, so small data sets see deletions too.
  const share = pct(options.gc, 0.03)
  const gc = share > 0 && objects.length > 1 ? Math.max(1, Math.round(objects.length * share)) : 0
  const victims = new Set()
  while (victims.size < Math.min(gc, objects.length)) victims.add(objects[Math.floor(g.rand() * objects.length)])
  for (const f of victims) rmSync(join(shared, f))
  write(g, join(shared, 'ckp', `meta_${ckpName(g)}`), g.bytes(64 * 1024))
  const walDir = join(dir, 'logservice-data', readdirSync(join(dir, 'logservice-data'))[0])
  const last = join(walDir, readdirSync(walDir).sort().at(-1))
  appendFileSync(last, g.bytes(parseSize(options.wal, 16 * 1024 ** 2)))
  const t = g.tick()
  utimesSync(last, t, t)
  return {added: true, removed: [...victims]}
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [cmd, dir, ...rest] = process.argv.slice(2)
  const opt = {}
  for (let i = 0; i < rest.length; i += 2) opt[rest[i].replace(/^--/, '')] = rest[i + 1]
  if (!['create', 'mutate'].includes(cmd) || !dir) {
    console.error(
      'usage: make-mo-data.mjs create|mutate DIR [--size 64MiB] [--seed N] [--add 5%] [--gc 3%] [--wal 16MiB]',
    )
    process.exit(2)
  }

  try {
    if (cmd === 'create') createMoData(dir, {seed: opt.seed === undefined ? 1 : Number(opt.seed), size: opt.size})
    else
      mutateMoData(dir, {add: opt.add, gc: opt.gc, seed: opt.seed === undefined ? 2 : Number(opt.seed), wal: opt.wal})
  } catch (error) {
    console.error(`make-mo-data: ${error.message}`)
    process.exit(2)
  }
}
