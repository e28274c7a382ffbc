/**
 * The data directory as a backup sees it: its entries (scan), and each file's bytes (read once).
 *
 * Guarantees: the scan returns every entry sorted by path, the data directory itself first (path
 * ''), each with its mode, mtime and owner (uid, gid and their names here), without following
 * symlinks. Symlinks that lead out of the data dir (or are absolute), on their own or through the
 * other symlinks of the tree, names and link targets that are not valid UTF-8 (a manifest and a
 * restore could not give them back byte for byte), and anything that is not a file, dir or
 * symlink, are refused with the path named; `checkNames` finds the names alone, cheaply, before a
 * backup stops anything. `readFile` yields a file's bytes in 1 MiB chunks and fails, naming the
 * file, as soon as it grows past its scanned size, and at the end if it shrank or vanished: no
 * wrong byte count reaches the tar. It does not decide what a backup holds (plan.ts does), nor
 * hash or pack (write.ts and pack.ts).
 */
import {createHash, type Hash} from 'node:crypto'
import {closeSync, openSync, readSync} from 'node:fs'
import {lstat, readdir, readlink} from 'node:fs/promises'
import {join} from 'node:path'

import type {FileEntry, ManifestEntry} from './types.js'

import {BrError, throwIfAborted, usageError} from '../errors.js'
import {comparePaths} from './manifest.js'
import {OwnerTable} from './owners.js'
import {findEscapingSymlink, symlinkStaysInside} from './paths.js'

/**
 * What a scan finds: manifest entries without what packing adds (a file's sha256 and backup id).
 * The first, with path '', is the data directory itself (the manifest's `root`).
 */
export type ScannedEntry = Exclude<ManifestEntry, {type: 'file'}> | ScannedFile
/** A file as scanned: what packing adds (its sha256, the backup that holds it) is still to come. */
export type ScannedFile = Omit<FileEntry, 'in' | 'parts' | 'sha256'> & {
  /**
   * incrementals (plan.ts): the base's entry of this file, which has grown since; when the file
   * still begins with the base's bytes, only the bytes after them are packed (write.ts)
   */
  grewFrom?: FileEntry
}

/** The path of the data directory's own entry among scanned entries. */
export const ROOT_PATH = ''

/** sha256 runs ~2.3x faster on 1 MiB reads than on the default 64 KiB (LIBRARIES.md). */
const READ_CHUNK = 1024 * 1024
/** lstat calls in flight per directory: enough to hide latency, few enough to keep fds free. */
const STAT_BATCH = 64

export interface ScanOptions {
  /** relative path prefixes to leave out ('shared-cache' leaves out shared-cache and everything under it) */
  exclude?: string[]
  signal?: AbortSignal
}

const utf8 = new TextDecoder('utf8', {fatal: true})

/** A name as UTF-8, or a usage error naming it (escaped) when its bytes are not valid UTF-8. */
function utf8Name(bytes: Buffer, dir: string, what: string): string {
  let name: string
  try {
    name = utf8.decode(bytes)
  } catch {
    name = ''
  }

  // Decoding is not enough: a valid decode must give the same bytes back.
  if (name !== '' && Buffer.from(name, 'utf8').equals(bytes)) return name
  const escaped = [...bytes]
    .map((b) =>
      b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCodePoint(b) : `\\x${b.toString(16).padStart(2, '0')}`,
    )
    .join('')
  const path = what === 'name' ? (dir === '' ? escaped : `${dir}/${escaped}`) : dir
  return badName(path, what === 'name' ? 'its name is not valid UTF-8' : `its target is not valid UTF-8 (${escaped})`)
}

function badName(path: string, why: string): never {
  throw usageError(
    `cannot back up ${path} in the data directory: ${why}`,
    `rename it to valid UTF-8 (a manifest keeps names as UTF-8 text, so it could not be restored byte for byte), or --exclude its directory; nothing was stopped or written`,
  )
}

function excluder(list: string[] | undefined): (path: string) => boolean {
  const exclude = (list ?? []).map((e) => e.replaceAll(/^(\.\/)+|\/+$/g, '')).filter((e) => e !== '')
  return (path) => exclude.some((e) => path === e || path.startsWith(`${e}/`))
}

/**
 * Walks `root` for names and symlink targets only, and refuses (usage, exit 2) the first that is
 * not valid UTF-8: a backup calls it before it stops the service, so it never fails halfway. About
 * one readdir per directory; it does not stat files.
 */
export async function checkNames(root: string, options: ScanOptions = {}): Promise<void> {
  const excluded = excluder(options.exclude)
  async function walk(dir: string): Promise<void> {
    throwIfAborted(options.signal)
    const entries = await readdir(dir === '' ? root : join(root, dir), {encoding: 'buffer', withFileTypes: true})
    for (const entry of entries) {
      const path = dir === '' ? utf8Name(entry.name, dir, 'name') : `${dir}/${utf8Name(entry.name, dir, 'name')}`
      if (excluded(path)) continue
      if (entry.isSymbolicLink()) {
        // eslint-disable-next-line no-await-in-loop -- links are few
        utf8Name(await readlink(join(root, path), {encoding: 'buffer'}), path, 'target')
      } else if (entry.isDirectory()) {
        // eslint-disable-next-line no-await-in-loop -- depth first keeps the walk's memory small
        await walk(path)
      }
    }
  }

  await walk('')
}

/**
 * Walks `root` (not following symlinks) and returns its entries sorted by path, `root` itself
 * first (path ''), each with its owner.
 */
export async function scanDataDir(root: string, options: ScanOptions = {}): Promise<ScannedEntry[]> {
  const excluded = excluder(options.exclude)
  const owners = new OwnerTable()
  const top = await lstat(root)
  const out: ScannedEntry[] = [
    {
      mode: top.mode % 0o1_0000,
      mtimeMs: top.mtimeMs,
      owner: owners.owner(top.uid, top.gid),
      path: ROOT_PATH,
      type: 'dir',
    },
  ]

  async function walk(dir: string): Promise<void> {
    throwIfAborted(options.signal)
    const names = await readdir(dir === '' ? root : join(root, dir), {encoding: 'buffer'})
    const paths = names
      .map((name) => (dir === '' ? utf8Name(name, dir, 'name') : `${dir}/${utf8Name(name, dir, 'name')}`))
      .filter((p) => !excluded(p))
    const subdirs: string[] = []
    for (let i = 0; i < paths.length; i += STAT_BATCH) {
      // eslint-disable-next-line no-await-in-loop -- batches bound the open lstat calls
      const entries = await Promise.all(paths.slice(i, i + STAT_BATCH).map((path) => scanOne(root, path, owners)))
      for (const entry of entries) {
        out.push(entry)
        if (entry.type === 'dir') subdirs.push(entry.path)
      }
    }

    for (const sub of subdirs) {
      // eslint-disable-next-line no-await-in-loop -- depth first keeps the walk's memory small
      await walk(sub)
    }
  }

  await walk('')
  const links = new Map<string, string>()
  for (const e of out) if (e.type === 'symlink') links.set(e.path, e.target)
  // Each link stays inside on its own (scanOne); a restore refuses those that lead out together.
  const escaping = findEscapingSymlink(links)
  if (escaping) {
    throw new BrError('error', `symlink ${escaping.path} in the data directory: ${escaping.why}`, {
      suggestions: [
        `a backup holds only what is inside the data directory, and a restore refuses links that lead out: fix the link, or --exclude ${escaping.path}`,
      ],
    })
  }

  await owners.name()
  return out.sort((a, b) => comparePaths(a.path, b.path))
}

async function scanOne(root: string, path: string, owners: OwnerTable): Promise<ScannedEntry> {
  const abs = join(root, path)
  const info = await lstat(abs)
  const owner = owners.owner(info.uid, info.gid)
  if (info.isFile())
    return {mode: info.mode % 0o1_0000, mtimeMs: info.mtimeMs, owner, path, size: info.size, type: 'file'}
  if (info.isDirectory()) return {mode: info.mode % 0o1_0000, mtimeMs: info.mtimeMs, owner, path, type: 'dir'}
  if (info.isSymbolicLink()) {
    const target = utf8Name(await readlink(abs, {encoding: 'buffer'}), path, 'target')
    if (!symlinkStaysInside(path, target)) {
      throw new BrError('error', `symlink ${path} in the data directory leads outside it (${target})`, {
        suggestions: [
          `a backup holds only what is inside the data directory: make the link relative and inside, or --exclude ${path}`,
        ],
      })
    }

    return {mtimeMs: info.mtimeMs, owner, path, target, type: 'symlink'}
  }

  throw new BrError('error', `${path} in the data directory is not a file, directory or symlink`, {
    suggestions: [`--exclude ${path}, or remove it`],
  })
}

/** How a file is read: into lent buffers, from an offset, until aborted. */
export interface ReadOptions {
  buffers?: ReadBuffers
  /** the first byte to read: a file that grew is packed from where the base ended */
  from?: number
  signal?: AbortSignal
}

/**
 * The bytes of the scanned file `entry` under `root`, read once (from byte `options.from` on:
 * the bytes appended to a file that grew).
 * @yields the next chunk, fresh (the last may be shorter)
 */
export function* readFile(root: string, entry: ScannedFile, options: ReadOptions = {}): Generator<Buffer> {
  let read = options.from ?? 0
  try {
    for (const chunk of readChunks(join(root, entry.path), options)) {
      read += chunk.length
      // Checked before the bytes go on: the tar would only notice at the entry's end.
      if (read > entry.size) throw changedWhileRead(entry.path, entry.size, `grew past ${entry.size} bytes`)
      yield chunk
    }
  } catch (error) {
    throw explainReadError(entry, error)
  }

  if (read !== entry.size) throw changedWhileRead(entry.path, entry.size, `shrank to ${read} bytes`)
}

/**
 * A file's bytes in fresh 1 MiB buffers, read synchronously.
 * @yields the next chunk (the last may be shorter) Measured here (2 cores, zstd's
 * workers busy): a thread-pool read waits for a core and ran the packer at ~500 MB/s, with
 * read-ahead no better; a synchronous read from the page cache is a memcpy, and the packer ran at
 * ~770 MB/s. It blocks the event loop for one read at a time (about a millisecond from cache).
 */
function* readChunks(path: string, options: ReadOptions & {to?: number}): Generator<Buffer> {
  const {buffers, signal, to = Number.POSITIVE_INFINITY} = options
  const fd = openSync(path, 'r')
  try {
    for (let at = options.from ?? 0; at < to;) {
      throwIfAborted(signal)
      const buffer = buffers ? buffers.take() : Buffer.allocUnsafe(READ_CHUNK)
      const bytesRead = readSync(fd, buffer, 0, Math.min(READ_CHUNK, to - at), at)
      if (bytesRead === 0) {
        buffers?.give(buffer)
        return
      }

      at += bytesRead
      yield bytesRead === READ_CHUNK ? buffer : buffer.subarray(0, bytesRead)
    }
  } finally {
    closeSync(fd)
  }
}

/**
 * The SHA-256 of the first `size` bytes of the scanned file `entry` under `root`, or undefined
 * when it is shorter; the hash is left open, to go on over the bytes after them.
 */
export function hashPrefix(
  root: string,
  entry: ScannedFile,
  size: number,
  options: ReadOptions = {},
): Hash | undefined {
  const hash = createHash('sha256')
  let read = 0
  try {
    for (const chunk of readChunks(join(root, entry.path), {...options, from: 0, to: size})) {
      hash.update(chunk)
      read += chunk.length
      options.buffers?.give(chunk)
    }
  } catch (error) {
    throw explainReadError(entry, error)
  }

  return read === size ? hash : undefined
}

/**
 * Read buffers that come back once the stage that copies them is done with them (zstd-pool.ts
 * copies each chunk into its pieces): the next reads reuse them instead of allocating 1 MiB each
 * (a GiB of garbage ArrayBuffers costs about one major GC per 20 MiB). A buffer comes back at most
 * once per loan (`give` ignores what it did not lend, or lent and got back already); one that
 * never comes back is garbage as before.
 */
export class ReadBuffers {
  private readonly free: ArrayBuffer[] = []
  private readonly lent = new WeakSet<ArrayBufferLike>()

  constructor(private readonly keep = 16) {}

  /** Hands back a chunk that came from `take` (whole or a part of it): nothing may use its bytes after. */
  give(chunk: Uint8Array): void {
    if (!this.lent.delete(chunk.buffer)) return
    if (this.free.length < this.keep) this.free.push(chunk.buffer as ArrayBuffer)
  }

  take(): Buffer {
    const buffer = this.free.pop() ?? new ArrayBuffer(READ_CHUNK)
    this.lent.add(buffer)
    return Buffer.from(buffer, 0, READ_CHUNK)
  }
}

function explainReadError(entry: {path: string; size: number}, error: unknown): Error {
  if (error instanceof BrError) return error
  if ((error as NodeJS.ErrnoException).code === 'ENOENT') return changedWhileRead(entry.path, entry.size, 'disappeared')
  return error as Error
}

function changedWhileRead(path: string, size: number, what: string): BrError {
  return new BrError('error', `${path} changed while it was read: it ${what} (${size} bytes when scanned)`, {
    suggestions: [
      'the service must be stopped during a cold backup: use --service mo_ctl|systemd|command, or stop it first',
    ],
  })
}
