/**
 * Shared by the archive tests: a real data directory with the awkward cases (empty and 1-byte
 * files, sizes at the 64 KiB age chunk boundary, a few MiB half random half text, deep and long
 * and unicode paths, symlinks, odd modes, set mtimes), a tree comparison, and byte sinks.
 */
import {createHash, randomBytes} from 'node:crypto'
import {chmod, lstat, mkdir, readFile, readlink, symlink, utimes, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {Readable, Writable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {expect} from 'vitest'

import {scanDataDir} from '../../../../src/lib/archive/walk.js'
import {tempDir as sharedTempDir} from '../../../helpers/cli.js'

export const LONG_DIR = `${'l'.repeat(60)}/${'m'.repeat(60)}`
export const LONG_FILE = `${LONG_DIR}/${'n'.repeat(80)}.dat`
export const UNICODE_FILE = 'données/日本語-файл ünïcödé.txt'

/** The tests' one temp dir helper (test/helpers/cli.ts), under the name these tests use. */
export async function tempDir(prefix = 'moctl-br-archive-'): Promise<{cleanup: () => Promise<void>; dir: string}> {
  const {cleanup, path} = await sharedTempDir(prefix)
  return {cleanup, dir: path}
}

/** Half random (incompressible), half text (compressible), like real data files. */
export function mixedBytes(size: number): Buffer {
  const half = Math.floor(size / 2)
  const text = Buffer.alloc(size - half, 'INSERT INTO t VALUES (42, "matrixone");\n')
  return Buffer.concat([randomBytes(half), text])
}

/** Fills `root` with the awkward cases; returns the relative paths of its regular files. */
export async function makeDataDir(root: string, options: {bigMiB?: number} = {}): Promise<string[]> {
  const files: Record<string, Buffer> = {
    'big.bin': mixedBytes((options.bigMiB ?? 3) * 1024 * 1024 + 123),
    'chunk-exact.bin': randomBytes(64 * 1024),
    'chunk-plus-one.bin': randomBytes(64 * 1024 + 1),
    'empty.dat': Buffer.alloc(0),
    [LONG_FILE]: mixedBytes(5000),
    'nested/a/b/c/deep.txt': Buffer.from('deep\n'),
    'one.byte': Buffer.from('x'),
    'shared/0190f3a2-aaaa_00001': mixedBytes(200_000),
    [UNICODE_FILE]: Buffer.from('ünïcödé\n'),
  }
  for (const [path, bytes] of Object.entries(files)) {
    await mkdir(join(root, path, '..'), {recursive: true})
    await writeFile(join(root, path), bytes)
  }

  await mkdir(join(root, 'empty-dir'))
  await symlink('one.byte', join(root, 'link-to-one'))
  await symlink('../../one.byte', join(root, 'nested/a/up-link'))
  await symlink('missing-target', join(root, 'dangling-link'))
  await chmod(join(root, 'one.byte'), 0o640)
  await chmod(join(root, 'chunk-exact.bin'), 0o600)
  await chmod(join(root, 'nested/a'), 0o750)
  // Distinct, sub-millisecond mtimes: the restore must bring them back.
  let t = 1_700_000_000.123_456
  for (const path of Object.keys(files)) {
    await utimes(join(root, path), t, t)
    t += 1000.5
  }

  await utimes(join(root, 'nested/a'), 1_600_000_000, 1_600_000_000)
  return Object.keys(files).sort()
}

/** Asserts that two trees hold the same entries: types, bytes, modes, mtimes (within 1 ms by default), link targets. */
export async function expectSameTree(
  expected: string,
  actual: string,
  options: {exclude?: string[]; mtimeToleranceMs?: number} = {},
): Promise<void> {
  const a = await scanDataDir(expected, options)
  const b = await scanDataDir(actual, options)
  expect(b.map((e) => `${e.type} ${e.path}`)).toEqual(a.map((e) => `${e.type} ${e.path}`))
  for (const [i, e] of a.entries()) {
    const got = b[i]
    expect(Math.abs(got.mtimeMs - e.mtimeMs), `mtime of ${e.path}`).toBeLessThan(options.mtimeToleranceMs ?? 1)
    if (e.type === 'symlink') {
      expect(await readlink(join(actual, e.path))).toBe(e.target)
      continue
    }

    expect((got as {mode: number}).mode, `mode of ${e.path}`).toBe(e.mode)
    if (e.type === 'file') {
      expect(sha256(await readFile(join(actual, e.path))), `bytes of ${e.path}`).toBe(
        sha256(await readFile(join(expected, e.path))),
      )
    }
  }
}

export const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

/** A Writable that keeps what it is given. */
export function memorySink(): {bytes: () => Buffer; stream: Writable} {
  const chunks: Buffer[] = []
  return {
    bytes: () => Buffer.concat(chunks),
    stream: new Writable({
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk)
        callback()
      },
    }),
  }
}

/** Runs `bytes` through the given stages and returns what comes out. */
export async function through(bytes: Buffer, ...stages: NodeJS.ReadWriteStream[]): Promise<Buffer> {
  const sink = memorySink()
  // Several writes, so stages see chunk boundaries that are not the data's.
  const pieces = [bytes.subarray(0, 1000), bytes.subarray(1000, 300_000), bytes.subarray(300_000)].filter(
    (p) => p.length > 0,
  )
  await pipeline([Readable.from(pieces), ...stages, sink.stream])
  return sink.bytes()
}

export async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path)
    return true
  } catch {
    return false
  }
}
