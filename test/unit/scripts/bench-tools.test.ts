import {execFileSync, spawnSync} from 'node:child_process'
import {readdirSync, readFileSync} from 'node:fs'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {mallocEnvs, median, onGlibc, parseSize, stepTimes, TUNED_MALLOC} from '../../../bench/measure.mjs'
import {profileRun} from '../../../bench/profile.mjs'
import {ROOT, tempDir} from '../../helpers/cli.js'
import {needs, skipNote} from '../../helpers/needs.js'

let tmp: {cleanup: () => Promise<void>; path: string}
beforeAll(async () => {
  tmp = await tempDir()
})
afterAll(async () => tmp.cleanup())

const total = (ms: Record<string, number>) => Object.values(ms).reduce((a, b) => a + b, 0)
/** the stage with the most time */
const largest = (ms: Record<string, number>) => Object.entries(ms).sort((a, b) => b[1] - a[1])[0][0]

describe('bench/measure.mjs', () => {
  it('reads the plain log of a flow back into milliseconds per step', () => {
    const log = [
      '2026-12-01T10:06:56Z Scan data directory: started',
      '2026-12-01T10:06:57Z Scan data directory: 536 files, 1.0 GiB',
      '2026-12-01T10:06:57Z Scan data directory: done in 98ms',
      '2026-12-01T10:07:05Z Pack, compress and encrypt: done in 8.3s',
      '2026-12-01T10:08:05Z Publish: done in 1m15s',
    ].join('\n')
    expect(stepTimes(log)).toEqual({'Pack, compress and encrypt': 8300, Publish: 75_000, 'Scan data directory': 98})
  })

  it('takes medians and reads sizes as the generator writes them', () => {
    expect(median([3, 1, 2])).toBe(2)
    expect(median([4, 1, 2, 3])).toBe(2.5)
    expect(parseSize('8GiB')).toBe(8 * 1024 ** 3)
    expect(parseSize('256MiB')).toBe(256 * 1024 ** 2)
    expect(parseSize('eight')).toBeNaN()
  })
})

/** Off glibc (musl, macOS) there are no such settings to check. */
const glibc = onGlibc()
/** glibc's dynamic loader this process runs under, its path from /proc/self/maps. */
const ldso = glibc ? readFileSync('/proc/self/maps', 'utf8').match(/\/\S*\/ld-linux[^/\s]*\.so[.\d]*/)?.[0] : undefined
const NO_LDSO = "glibc's ld.so is not in /proc/self/maps"
/** A malloc tunable's value as `ld.so --list-tunables` prints it (hex). */
const tunable = (text: string, name: string) =>
  text.match(new RegExp(`^glibc\\.malloc\\.${name}: (0x[0-9a-f]+)`, 'm'))?.[1]
// Off glibc the check does not apply (skipped by name); on glibc a missing ld.so fails CI.
const hasLdso = glibc && needs(ldso !== undefined, NO_LDSO)
/** What ld.so read from GLIBC_TUNABLES=`tunables`: every tunable with its value. */
const list = (tunables: string) =>
  execFileSync(ldso!, ['--list-tunables'], {encoding: 'utf8', env: {GLIBC_TUNABLES: tunables}})

describe('bench/measure.mjs: the allocator settings README gives operators', () => {
  it('plain drops GLIBC_TUNABLES; tuned sets TUNED_MALLOC on glibc only; both keep the rest', () => {
    const env = {GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1', KEEP: 'x'}
    expect(mallocEnvs(env, true)).toEqual({plain: {KEEP: 'x'}, tuned: {GLIBC_TUNABLES: TUNED_MALLOC, KEEP: 'x'}})
    expect(mallocEnvs(env, false)).toEqual({plain: {KEEP: 'x'}, tuned: undefined})
    expect(env.GLIBC_TUNABLES).toBe('glibc.malloc.hugetlb=1')
  })

  // glibc skips a tunable it does not know without a word: a typo would make the tuned rows
  // measure the defaults. ld.so --list-tunables prints what it read from the environment.
  it.runIf(hasLdso)(
    `glibc reads both settings as README states them${skipNote(hasLdso, glibc ? NO_LDSO : 'not glibc')}`,
    () => {
      const tuned = list(TUNED_MALLOC)
      expect(Number(tunable(tuned, 'mmap_threshold'))).toBe(32 * 1024 * 1024)
      expect(Number(tunable(tuned, 'trim_threshold'))).toBe(1024 * 1024 * 1024)
      // and the check would see a setting glibc did not take
      expect(Number(tunable(list(''), 'trim_threshold'))).not.toBe(1024 * 1024 * 1024)
      const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
      expect(readme).toContain(`export GLIBC_TUNABLES=${TUNED_MALLOC}`)
    },
  )
})

describe('bench/profile.mjs', () => {
  it('puts a process that hashes into the sha256 stage, and one that compresses into zstd', async () => {
    const script = join(tmp.path, 'work.mjs')
    await writeFile(
      script,
      [
        "import {createHash} from 'node:crypto'",
        "import {deflateSync} from 'node:zlib'",
        'const block = Buffer.alloc(16 * 1024 * 1024, 7)',
        "if (process.argv[2] === 'hash') for (let i = 0; i < 20; i++) createHash('sha256').update(block).digest()",
        // zlib standing in for zstd (Node 24's zstd is node:zlib's)
        'else for (let i = 0; i < 20; i++) deflateSync(block, {level: 9})',
      ].join('\n'),
    )
    const hashing = profileRun('hash', [script, 'hash'], join(tmp.path, 'hash'))
    expect(hashing.threads).toBe(1)
    // The biggest stage, and most of the time: on a machine busy with the rest of the suite, the
    // start of Node and the 16 MiB fill weigh more (0.49 of the time was sha256's once), so not 0.5.
    expect(largest(hashing.ms)).toBe('sha256')
    expect(hashing.ms.sha256 / total(hashing.ms)).toBeGreaterThan(0.35)
    expect(hashing.processMs).toBeGreaterThan(0)
    const compressing = profileRun('compress', [script, 'compress'], join(tmp.path, 'compress'))
    expect(largest(compressing.ms)).toBe('zstd')
    expect(compressing.ms.zstd / total(compressing.ms)).toBeGreaterThan(0.35)
  })
})

/** A bench script run as a process, in the test's temp dir: its exit status and output. */
const runScript = (script: string, ...args: string[]) =>
  spawnSync(process.execPath, [join(ROOT, 'bench', script), ...args], {cwd: tmp.path, encoding: 'utf8'})

describe('bench/hash.mjs', () => {
  it('times SHA-256 as the manifest uses it, and names each BLAKE3 row as measured or not installed', () => {
    const out = execFileSync(process.execPath, [join(ROOT, 'bench/hash.mjs'), '--size=16MiB', '--rounds=1'], {
      encoding: 'utf8',
    })
    const rows = new Map(
      out
        .split('\n')
        .filter((line) => line.startsWith('| ') && !line.startsWith('| hash'))
        .map((line) => line.split('|').map((cell) => cell.trim()))
        .map((cells) => [cells[1], cells.slice(2)] as const),
    )
    const sha = rows.get('sha256, node:crypto')!
    expect(Number(sha[0])).toBeGreaterThan(0)
    expect(sha[2]).toBe('1.00x')
    for (const name of ['blake3, @napi-rs/blake-hash (native)', 'blake3, hash-wasm (WebAssembly)']) {
      expect(rows.get(name)![0]).toMatch(/^\d+$|^not installed \(npm install --no-save/)
    }

    if (process.arch === 'x64')
      expect(Number(rows.get('sha256, node:crypto, SHA extensions masked')![0])).toBeGreaterThan(0)
  })

  it('refuses a size it cannot hash or a count that is no count of rounds (exit 2)', () => {
    for (const size of ['lots', '0', '1KiB']) {
      expect(runScript('hash.mjs', `--size=${size}`)).toMatchObject({
        status: 2,
        stderr: expect.stringMatching(new RegExp(`^bench: --size=${size} is not a size of 1 MiB or more`)),
      })
    }

    expect(runScript('hash.mjs', '--size=16MiB', '--rounds=0')).toMatchObject({
      status: 2,
      stderr: expect.stringMatching(/--rounds=0/),
    })
  })
})

describe('bench/make-repo.mjs', () => {
  it('prints its usage for --help and refuses a flag-like or fractional argument, making nothing', () => {
    const help = runScript('make-repo.mjs', '--help')
    expect(help.status).toBe(0)
    expect(help.stdout).toMatch(/^usage: node bench\/make-repo.mjs REPO N/)
    expect(runScript('make-repo.mjs', '--json', '3')).toMatchObject({
      status: 2,
      stderr: expect.stringMatching(/--json is no flag of this script/),
    })
    expect(runScript('make-repo.mjs', join(tmp.path, 'r'), '1.5')).toMatchObject({
      status: 2,
      stderr: expect.stringMatching(/REPO and N/),
    })
    expect(readdirSync(tmp.path).filter((name) => name.startsWith('-') || name.startsWith('r'))).toEqual([])
  })
})
