#!/usr/bin/env node
// Would BLAKE3 pay off for the manifest's per-file sums (issue 11: "measure whether BLAKE3 or a
// tree hash would pay off before changing the manifest; SHA-256 stays the default")? This bench
// times each hash on 1 MiB updates, the size the pipeline reads, and prints what each would cost
// per GiB of files: a backup and a restore hash every file once, a verify once more.
//
//   node bench/hash.mjs [--size=512MiB] [--rounds=3]
//
// Rows, each in a process of its own, rounds interleaved, median of CPU time:
// - sha256, node:crypto: what the manifest uses (OpenSSL; with the CPU's SHA extensions if any);
// - the same with the SHA extensions masked (OPENSSL_ia32cap, x86-64): a CPU without them, as
//   Intel's server parts before Ice Lake;
// - blake3, @napi-rs/blake-hash (Rust's blake3 crate, native, one thread) and hash-wasm
//   (WebAssembly, the portable fallback such a change would need), when installed: they are no
//   dependency of the project (npm install --no-save @napi-rs/blake-hash hash-wasm).
import {spawnSync} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'

import {argValue, median, parseSize} from './measure.mjs'

const MiB = 1024 * 1024
const argv = process.argv.slice(2)
const child = argValue(argv, 'child', '')
const bytes = parseSize(argValue(argv, 'size', '512MiB'))
if (!Number.isFinite(bytes) || bytes < MiB) {
  console.error(`bench: --size=${argValue(argv, 'size', '')} is not a size of 1 MiB or more: pass --size=512MiB`)
  process.exit(2)
}

const rounds = Number(argValue(argv, 'rounds', '3'))
if (!Number.isInteger(rounds) || rounds < 1) {
  console.error(`bench: --rounds=${argValue(argv, 'rounds', '')} is not a count of rounds: pass --rounds=3`)
  process.exit(2)
}

/** BLAKE3's packages: no dependency of the project, measured when installed (named here, not imported by name). */
const OPTIONAL = {native: '@napi-rs/blake-hash', wasm: 'hash-wasm'}

/** Each row: how to make a hasher (update/digest), and the environment its process needs. */
const ROWS = [
  {env: {}, make: async () => createHash('sha256'), name: 'sha256, node:crypto'},
  {
    // eslint-disable-next-line camelcase -- OpenSSL's own variable
    env: {OPENSSL_ia32cap: ':~0x20000000'},
    make: async () => createHash('sha256'),
    name: 'sha256, node:crypto, SHA extensions masked',
    only: process.arch === 'x64',
  },
  {
    env: {},
    async make() {
      const {Blake3Hasher} = await import(OPTIONAL.native)
      return new Blake3Hasher()
    },
    name: 'blake3, @napi-rs/blake-hash (native)',
  },
  {
    env: {},
    async make() {
      const {createBLAKE3} = await import(OPTIONAL.wasm)
      const hasher = await createBLAKE3()
      return {digest: () => hasher.digest('hex'), update: (chunk) => hasher.update(chunk)}
    },
    name: 'blake3, hash-wasm (WebAssembly)',
  },
]

if (child) {
  // One row, in this process: one warm-up pass, then the timed one; prints CPU-s for `bytes`.
  const row = ROWS.find((r) => r.name === child)
  const chunk = randomBytes(MiB)
  const pass = async () => {
    const hasher = await row.make()
    for (let done = 0; done < bytes; done += MiB) hasher.update(chunk)
    return hasher.digest('hex')
  }

  try {
    await pass()
  } catch (error) {
    if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error
    console.log(JSON.stringify({missing: true}))
    process.exit(0)
  }

  const before = process.cpuUsage()
  await pass()
  const cpu = process.cpuUsage(before)
  console.log(JSON.stringify({cpuSeconds: (cpu.user + cpu.system) / 1e6}))
  process.exit(0)
}

const rows = ROWS.filter((r) => r.only !== false)
const seconds = new Map(rows.map((r) => [r.name, []]))
const missing = new Set()
for (let round = 0; round < rounds; round++) {
  for (const row of rows) {
    if (missing.has(row.name)) continue
    const args = [process.argv[1], `--child=${row.name}`, `--size=${bytes}`]
    const r = spawnSync(process.execPath, args, {encoding: 'utf8', env: {...process.env, ...row.env}})
    if (r.status !== 0) {
      console.error(`bench: ${row.name} failed:\n${r.stderr}`)
      process.exit(1)
    }

    const out = JSON.parse(r.stdout)
    if (out.missing) missing.add(row.name)
    else seconds.get(row.name).push(out.cpuSeconds)
  }
}

const GiB = 1024 ** 3
console.log(`\n${(bytes / MiB).toFixed(0)} MiB per run in 1 MiB updates; node ${process.version}; median of ${rounds}`)
console.log('| hash | MB/s (CPU time) | CPU-s per GiB of files | against sha256 here |')
console.log('|---|---|---|---|')
const base = median(seconds.get(ROWS[0].name))
for (const row of rows) {
  if (missing.has(row.name)) {
    console.log(`| ${row.name} | not installed (npm install --no-save @napi-rs/blake-hash hash-wasm) | | |`)
    continue
  }

  const s = median(seconds.get(row.name))
  const perGiB = (s * GiB) / bytes
  console.log(`| ${row.name} | ${(bytes / s / 1e6).toFixed(0)} | ${perGiB.toFixed(2)} | ${(s / base).toFixed(2)}x |`)
}
