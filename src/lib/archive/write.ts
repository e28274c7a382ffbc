/**
 * The write pipeline: the entries walk.ts scanned → each file read once (walk.ts) → its SHA-256
 * (tap.ts FileTap) → tar entries (pack.ts) → zstd (compress.ts) → age (age.ts) → the stored
 * bytes' sha256/size (tap.ts HashTap) → output, joined with stream/promises pipeline. The read
 * pipeline (read.ts) undoes it stage by stage. age tells zstd how far it has sealed, and zstd
 * compresses the next frames into those buffers (loan.ts).
 *
 * Guarantees: the manifest lists every packed entry with the hash of the very bytes packed, plus
 * the unchanged files of an incremental, and goes in last (MANIFEST.json); the returned sha256 and
 * size are those of the bytes handed to `output` (what the record will promise); any stage's
 * failure rejects the whole, destroys the other stages, and is reported as the error that started
 * it (a file that changed while read, not the broken pipe it causes). It does not decide what an
 * incremental holds: the caller passes the entries to pack, and the unchanged files (whose bytes
 * live in older backups) to list in the manifest only; every dir and symlink of the full set must
 * be among the packed entries (they are small; read.ts checks that). It does not make the output
 * durable or atomic: the repository writer does.
 */
import {type Readable, type Writable} from 'node:stream'
import {pipeline} from 'node:stream/promises'

import type {
  EncryptOptions,
  FileEntry,
  FilePart,
  Implementations,
  Manifest,
  ManifestEntry,
  PackProgress,
  RootEntry,
} from './types.js'

import {BrError, throwIfAborted} from '../errors.js'
import {EncryptStream} from './age-payload.js'
import {createEncryptStream} from './age.js'
import {createCompressor} from './compress.js'
import {keepFreedMemory} from './heap.js'
import {comparePaths, encodeManifest, manifestFormat} from './manifest.js'
import {TarPacker} from './pack.js'
import {FileTap, HashTap} from './tap.js'
import {hashPrefix, ReadBuffers, readFile, ROOT_PATH, type ScannedEntry, type ScannedFile} from './walk.js'
import {PoolCompressor} from './zstd-pool.js'

const PROGRESS_MS = 200

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
  /**
   * a file's bytes from somewhere other than `root` on this disk (an S3 staging prefix); it must
   * yield exactly `entry.size` bytes and may throw to fail the pack; default: walk.ts readFile
   */
  read?: (entry: ScannedFile, signal?: AbortSignal) => AsyncIterable<Buffer>
  root: string
  signal?: AbortSignal
  /** incrementals: files listed in the manifest as they are in the base (their bytes stay there) */
  unchanged?: FileEntry[]
}

export interface WriteArchiveOptions extends PackOptions {
  encrypt: EncryptOptions
  impl?: Implementations
  /** zstd level, 1-19 */
  level: number
  /** where the archive goes; ended by writeArchive */
  output: Writable
  /** zstd compression workers (compress.ts createCompressor); default one per core */
  parallelism?: number
}

export interface WriteArchiveResult {
  /** SHA-256 (hex) of the stored bytes */
  archiveSha256: string
  /** size of the stored bytes */
  archiveSize: number
  manifest: Manifest
  /** file bytes packed (before compression) */
  rawBytes: number
}

export async function writeArchive(options: WriteArchiveOptions): Promise<WriteArchiveResult> {
  keepFreedMemory()
  const encrypt = await createEncryptStream(options.encrypt, options.impl?.age)
  // The compressor hands the read buffers back once copied (the WebAssembly fallback does not),
  // and, when age (node:crypto) encrypts, takes its frames' buffers back once sealed (loan.ts).
  const buffers = new ReadBuffers()
  const sealing = encrypt instanceof EncryptStream
  const compress = createCompressor(options.level, options.impl?.zstd, {
    expectedBytes: newBytes(options.entries),
    parallelism: options.parallelism,
    recycle: (chunk) => buffers.give(chunk),
    releasing: sealing,
  })
  if (sealing && compress instanceof PoolCompressor) encrypt.doneWith = (position) => compress.doneWith(position)
  const packed = packArchive(options, buffers)
  // age's 64 KiB pieces go on as they are: the file writer gathers those that wait into one
  // writev, S3 into its parts. Gathered here in 1 MiB batches, each batch was a new buffer that
  // glibc mapped and unmapped: a backup of the 1 GiB set faulted 60-81k pages with them, 37-50k
  // without (12.2-11.2 against 12.4-10.0 CPU-s, the same wall time).
  const tap = new HashTap()
  try {
    await pipeline([packed.stream, compress, encrypt, tap, options.output], {signal: options.signal})
  } catch (error) {
    if (options.signal?.aborted) throw new BrError('interrupted', 'interrupted', {cause: options.signal.reason})
    // A pack error (a file changed while read…) says more than the stream errors it causes.
    await packed.done
    throw error
  }

  return {archiveSha256: tap.sha256, archiveSize: tap.bytes, manifest: await packed.done, rawBytes: packed.rawBytes()}
}

/**
 * Starts packing: the first stage of the pipeline. `stream` is the tar; `done` resolves to the
 * manifest once MANIFEST.json was written, or rejects with the first error (the stream is
 * destroyed with the same error). `rawBytes` counts file bytes read so far.
 */
export function packArchive(
  options: PackOptions,
  buffers?: ReadBuffers,
): {done: Promise<Manifest>; rawBytes: () => number; stream: Readable} {
  const packer = new TarPacker()
  const state = {rawBytes: 0}
  const done = writeEntries(packer, options, state, buffers).catch((error: unknown) => {
    packer.destroy(error as Error)
    throw error
  })
  // The consumer sees the error through the stream too: keep the promise from being unhandled.
  done.catch(() => {})
  return {done, rawBytes: () => state.rawBytes, stream: packer.stream}
}

/* eslint-disable no-await-in-loop -- a tar is written one entry after another */
async function writeEntries(
  packer: TarPacker,
  options: PackOptions,
  state: {rawBytes: number},
  buffers?: ReadBuffers,
): Promise<Manifest> {
  const {backupId, signal} = options
  const entries = [...options.entries].sort((a, b) => comparePaths(a.path, b.path))
  const files = entries.filter((e) => e.type === 'file')
  const progress: PackProgress = {
    bytesDone: 0,
    bytesTotal: newBytes(files),
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

  const onBytes = (n: number) => {
    progress.bytesDone += n
    state.rawBytes += n
    report(false)
  }

  const packed: ManifestEntry[] = []
  let rootEntry: RootEntry | undefined
  for (const entry of entries) {
    throwIfAborted(signal)
    switch (entry.type) {
      case 'dir': {
        await packer.dir(entry.path, entry)
        if (entry.path === ROOT_PATH) rootEntry = {mode: entry.mode, mtimeMs: entry.mtimeMs, owner: entry.owner}
        else packed.push(entry)
        break
      }

      case 'file': {
        packed.push(await packFile(packer, entry, options, {buffers, onBytes, progress}))
        progress.filesDone++
        break
      }

      case 'symlink': {
        await packer.symlink(entry.path, entry.target, entry)
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
    format: manifestFormat(all),
    ...(rootEntry ? {root: rootEntry} : {}),
  }
  await packer.manifest(encodeManifest(manifest))
  packer.finalize()
  report(true)
  return manifest
}

/* eslint-enable no-await-in-loop */

/**
 * The file bytes a pack of `entries` reads: a file that grew counts its new bytes (all of them are
 * read if it turns out not to begin as before, which packFile adds to the progress).
 */
function newBytes(entries: ScannedEntry[]): number {
  let n = 0
  for (const e of entries) if (e.type === 'file') n += e.size - (e.grewFrom?.size ?? 0)
  return n
}

/**
 * One file into the tar, hashed as it goes; its manifest entry. A file that grew since the base
 * (plan.ts) and still begins with the base's bytes goes in as the bytes after them
 * (`append/<path>`), its entry listing the parts it is assembled from; any other, whole.
 */
async function packFile(
  packer: TarPacker,
  entry: ScannedFile,
  options: PackOptions,
  pass: {buffers?: ReadBuffers; onBytes: (n: number) => void; progress: PackProgress},
): Promise<FileEntry> {
  const {backupId, root, signal} = options
  const base = entry.grewFrom
  const reading = {buffers: pass.buffers, signal}
  const begun = base && !options.read ? hashPrefix(root, entry, base.size, reading) : undefined
  const whole = begun && begun.copy().digest('hex') === base!.sha256 ? begun : undefined
  // The progress total counted the new bytes of a file that grew: it is packed whole after all.
  if (base && !whole) pass.progress.bytesTotal += base.size
  const from = whole ? base!.size : 0
  const tap = new FileTap(pass.onBytes, whole)
  const chunks = options.read
    ? tap.asyncChunks(options.read(entry, signal))
    : tap.chunks(readFile(root, entry, {...reading, from}))
  const size = entry.size - from
  await (whole ? packer.appended(entry.path, size, entry, chunks) : packer.file(entry.path, size, entry, chunks))
  const sha256 = tap.sha256()
  return {
    in: backupId,
    mode: entry.mode,
    mtimeMs: entry.mtimeMs,
    owner: entry.owner,
    ...(whole ? {parts: [...partsOf(base!), {in: backupId, sha256, size}]} : {}),
    path: entry.path,
    sha256: whole ? whole.digest('hex') : sha256,
    size: entry.size,
    type: 'file',
  }
}

/** The parts a file was assembled from in the base: itself whole, or its own parts. */
function partsOf(base: FileEntry): FilePart[] {
  return base.parts ?? [{in: base.in, sha256: base.sha256, size: base.size}]
}
