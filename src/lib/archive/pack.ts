/**
 * The read side of a backup: scan a data directory into a sorted entry list, then pack it as a
 * POSIX (pax) tar stream: `data/` for the data directory itself, `data/<path>` for every dir,
 * file and symlink given, `MANIFEST.json` last. Every entry carries its mode, mtime, uid, gid and
 * the names of its user and group (pax records where the ustar fields are too small), in the tar
 * and in the manifest. Each file is read once, in 1 MiB chunks, and hashed (SHA-256) as its bytes stream past;
 * no file is ever held in memory whole.
 *
 * Guarantees: symlinks that lead out of the data dir (or are absolute), on their own or through
 * the other symlinks of the tree, names and link targets that are not valid UTF-8 (a manifest
 * and a restore could not give them back byte for byte), and anything that is not a file, dir or
 * symlink, are refused by the scan with the path named; `checkNames` finds the names alone, cheaply,
 * before a backup stops anything; a file whose size changes
 * (or that vanishes) while it is read fails the pack loudly, naming it, before a wrong byte count
 * reaches the tar. It does not decide what an incremental holds: the caller passes the entries to
 * pack, and the unchanged files (whose bytes live in older backups) to list in the manifest only.
 * Every dir and symlink of the full set must be among the packed entries (they are small; unpack
 * checks that).
 */
import {createHash} from 'node:crypto'
import {closeSync, openSync, readSync} from 'node:fs'
import {lstat, readdir, readlink} from 'node:fs/promises'
import {join} from 'node:path'
import {type Readable} from 'node:stream'
import tar from 'tar-stream'

import type {FileEntry, Manifest, ManifestEntry, Owner, PackProgress, RootEntry} from './types.js'

import {BrError, throwIfAborted, usageError} from '../errors.js'
import {comparePaths, encodeManifest, findEscapingSymlink, MANIFEST_FORMAT, symlinkStaysInside} from './manifest.js'
import {OwnerTable} from './owners.js'

/**
 * What a scan finds: manifest entries without what packing adds (a file's sha256 and backup id).
 * The first, with path '', is the data directory itself (the manifest's `root`).
 */
export type ScannedEntry = Exclude<ManifestEntry, {type: 'file'}> | Omit<FileEntry, 'in' | 'sha256'>

/** The path of the data directory's own entry among scanned entries. */
export const ROOT_PATH = ''

export const MANIFEST_ENTRY = 'MANIFEST.json'
export const DATA_PREFIX = 'data/'
/** sha256 runs ~2.3x faster on 1 MiB reads than on the default 64 KiB (LIBRARIES.md). */
const READ_CHUNK = 1024 * 1024
/** lstat calls in flight per directory: enough to hide latency, few enough to keep fds free. */
const STAT_BATCH = 64
const PROGRESS_MS = 200

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

export interface PackOptions {
  backupId: string
  /**
   * what to pack, sorted or not: the data directory itself (path '', as scanned; without it the
   * manifest has no root), every dir and symlink, and the files whose bytes go in this archive
   */
  entries: ScannedEntry[]
  /** the rest of the manifest */
  manifestBase: Pick<Manifest, 'chain' | 'createdAt' | 'deleted' | 'type'>
  onProgress?: (p: PackProgress) => void
  root: string
  signal?: AbortSignal
  /** incrementals: files listed in the manifest as they are in the base (their bytes stay there) */
  unchanged?: FileEntry[]
}

/**
 * Starts packing. `stream` is the tar; `done` resolves to the manifest once MANIFEST.json was
 * written, or rejects with the first error (the stream is destroyed with the same error).
 * `rawBytes` counts file bytes read so far.
 */
export function packArchive(options: PackOptions): {done: Promise<Manifest>; rawBytes: () => number; stream: Readable} {
  const pack = tar.pack()
  const state = {rawBytes: 0}
  const done = writeEntries(pack, options, state).catch((error: unknown) => {
    pack.destroy(error as Error)
    throw error
  })
  // The consumer sees the error through the stream too: keep the promise from being unhandled.
  done.catch(() => {})
  // tar-stream is built on streamx, which Node's pipeline drives like its own streams.
  return {done, rawBytes: () => state.rawBytes, stream: pack as unknown as Readable}
}

/* eslint-disable no-await-in-loop -- a tar is written one entry after another */
async function writeEntries(pack: tar.Pack, options: PackOptions, state: {rawBytes: number}): Promise<Manifest> {
  const {backupId, root, signal} = options
  const entries = [...options.entries].sort((a, b) => comparePaths(a.path, b.path))
  const files = entries.filter((e) => e.type === 'file')
  const progress: PackProgress = {
    bytesDone: 0,
    bytesTotal: files.reduce((n, f) => n + f.size, 0),
    filesDone: 0,
    filesTotal: files.length,
  }
  let reported = 0
  const report = (force: boolean) => {
    const now = Date.now()
    if (options.onProgress && (force || now - reported >= PROGRESS_MS)) {
      reported = now
      options.onProgress({...progress})
    }
  }

  const packed: ManifestEntry[] = []
  let rootEntry: RootEntry | undefined
  for (const entry of entries) {
    throwIfAborted(signal)
    const name = DATA_PREFIX + entry.path
    const mtime = new Date(entry.mtimeMs)
    switch (entry.type) {
      case 'dir': {
        await addEntry(pack, {mode: entry.mode, mtime, name, type: 'directory', ...ownerHeader(entry.owner)})
        if (entry.path === ROOT_PATH) rootEntry = {mode: entry.mode, mtimeMs: entry.mtimeMs, owner: entry.owner}
        else packed.push(entry)
        break
      }

      case 'file': {
        const sha256 = await addFile(pack, join(root, entry.path), entry, {
          onBytes(n) {
            progress.bytesDone += n
            state.rawBytes += n
            report(false)
          },
          signal,
        })
        progress.filesDone++
        packed.push({
          in: backupId,
          mode: entry.mode,
          mtimeMs: entry.mtimeMs,
          owner: entry.owner,
          path: entry.path,
          sha256,
          size: entry.size,
          type: 'file',
        })
        break
      }

      case 'symlink': {
        await addEntry(pack, {linkname: entry.target, mtime, name, type: 'symlink', ...ownerHeader(entry.owner)})
        packed.push(entry)
        break
      }
    }
  }

  const all = [...packed, ...(options.unchanged ?? [])].sort((a, b) => comparePaths(a.path, b.path))
  for (let i = 1; i < all.length; i++) {
    if (all[i - 1].path === all[i].path)
      throw new BrError('error', `${all[i].path} is both packed and listed as unchanged`)
  }

  const manifest: Manifest = {
    ...options.manifestBase,
    backupId,
    entries: all,
    format: MANIFEST_FORMAT,
    ...(rootEntry ? {root: rootEntry} : {}),
  }
  await addEntry(pack, {mode: 0o600, mtime: new Date(), name: MANIFEST_ENTRY, type: 'file'}, encodeManifest(manifest))
  pack.finalize()
  report(true)
  return manifest
}

/* eslint-enable no-await-in-loop */

/** ustar's uid and gid fields hold 6 octal digits in tar-stream, its names 32 bytes. */
const USTAR_MAX_ID = 262_143 // 0o777777
const USTAR_MAX_NAME = 32

const fits = (name: string) => Buffer.byteLength(name) <= USTAR_MAX_NAME

/**
 * The owner in tar header fields, as `tar --same-owner` reads it back: the ustar fields, and pax
 * records for what they cannot hold (large ids, long names), as GNU tar writes them.
 */
function ownerHeader(owner: Owner | undefined): Partial<Parameters<tar.Pack['entry']>[0]> {
  if (!owner) return {}
  const {gid, gname, uid, uname} = owner
  const pax: Record<string, string> = {}
  if (uid > USTAR_MAX_ID) pax.uid = String(uid)
  if (gid > USTAR_MAX_ID) pax.gid = String(gid)
  if (!fits(uname)) pax.uname = uname
  if (!fits(gname)) pax.gname = gname
  return {
    gid: Math.min(gid, USTAR_MAX_ID),
    gname: fits(gname) ? gname : '',
    uid: Math.min(uid, USTAR_MAX_ID),
    uname: fits(uname) ? uname : '',
    ...(Object.keys(pax).length > 0 ? {pax} : {}),
  }
}

function addEntry(pack: tar.Pack, header: Parameters<tar.Pack['entry']>[0], body?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const callback = (error?: Error | null) => (error ? reject(error) : resolve())
    if (body) pack.entry(header, body, callback)
    else pack.entry(header, callback).end(Buffer.alloc(0))
  })
}

/** Streams one file into the tar, hashing it; fails, naming the file, if its size is not the scanned one. */
async function addFile(
  pack: tar.Pack,
  abs: string,
  entry: Omit<FileEntry, 'in' | 'sha256'>,
  {onBytes, signal}: {onBytes: (n: number) => void; signal?: AbortSignal},
): Promise<string> {
  const hash = createHash('sha256')
  let sink!: ReturnType<tar.Pack['entry']>
  const written = new Promise<void>((resolve, reject) => {
    sink = pack.entry(
      {
        mode: entry.mode,
        mtime: new Date(entry.mtimeMs),
        name: DATA_PREFIX + entry.path,
        size: entry.size,
        type: 'file',
        ...ownerHeader(entry.owner),
      },
      (error) => (error ? reject(error) : resolve()),
    )
  })
  // Its failure is reported by whichever await below sees it first; the sink's 'error' event
  // repeats the error we destroy it with.
  written.catch(() => {})
  sink.on('error', () => {})
  const fail = (error: unknown): never => {
    const reason = explainReadError(entry, error)
    // The tar stream ends with the same explained error, for a consumer that only watches it.
    sink.destroy(reason)
    throw reason
  }

  let read = 0
  try {
    for (const chunk of readChunks(abs, signal)) {
      read += chunk.length
      // Checked before the bytes reach the tar: tar-stream would only notice at the entry's end.
      if (read > entry.size) fail(changedWhileRead(entry.path, entry.size, `grew past ${entry.size} bytes`))
      hash.update(chunk)
      // eslint-disable-next-line no-await-in-loop -- backpressure: wait until the tar takes more
      if (!sink.write(chunk)) await drained(sink)
      onBytes(chunk.length)
    }
  } catch (error) {
    fail(error)
  }

  if (read !== entry.size) fail(changedWhileRead(entry.path, entry.size, `shrank to ${read} bytes`))
  sink.end(Buffer.alloc(0))
  await written
  return hash.digest('hex')
}

/**
 * A file's bytes in fresh 1 MiB buffers, read synchronously.
 * @yields the next chunk (the last may be shorter) Measured here (2 cores, zstd's
 * workers busy): a thread-pool read waits for a core and ran the packer at ~500 MB/s, with
 * read-ahead no better; a synchronous read from the page cache is a memcpy, and the packer ran at
 * ~770 MB/s. It blocks the event loop for one read at a time (about a millisecond from cache).
 */
function* readChunks(path: string, signal?: AbortSignal): Generator<Buffer> {
  const fd = openSync(path, 'r')
  try {
    for (;;) {
      throwIfAborted(signal)
      const buffer = Buffer.allocUnsafe(READ_CHUNK)
      const bytesRead = readSync(fd, buffer, 0, READ_CHUNK, null)
      if (bytesRead === 0) return
      yield bytesRead === READ_CHUNK ? buffer : buffer.subarray(0, bytesRead)
    }
  } finally {
    closeSync(fd)
  }
}

function drained(sink: ReturnType<tar.Pack['entry']>): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (error?: Error) => {
      sink.off('drain', done)
      sink.off('close', closed)
      if (error) reject(error)
      else resolve()
    }

    const closed = () => done(new Error('tar entry closed while writing'))
    sink.on('drain', done)
    sink.on('close', closed)
  })
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
