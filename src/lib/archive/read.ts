/**
 * The read pipeline, one for verify and restore, the write pipeline (write.ts) undone stage by
 * stage: stored bytes → sha256/size tap (tap.ts) → age decrypt (age.ts) → zstd (compress.ts) →
 * tar → for each entry, hash the bytes while discarding them (verify) or while writing them under
 * `dest` (file-sink.ts, on a worker thread; dirs and links: tree-writer.ts). MANIFEST.json comes
 * last, so every file's hash is kept and compared with it (manifest-check.ts) once it arrives.
 * As each chunk of a file is copied to the sink, the decompressor is told the tar stream before it
 * is done with, and decompresses the next frames into those buffers (loan.ts). A verify with one
 * decompression thread (the default on 2 cores) hashes on that thread: a chunk is not copied, the
 * worker is told where it lies in the frame it decompressed (read-worker.ts).
 *
 * Guarantees: nothing is written outside `dest`: entries named with `..`, absolute or empty
 * segments, names outside data/ (and append/, a file's appended bytes, a file only), types other
 * than file/dir/symlink, entries beneath a symlink (from the archive or already in `dest`), and
 * duplicates are refused (integrity, exit 3); files are created exclusively, never through or over
 * what is there, but for the paths `into` names: files a newer archive of the chain created, whose
 * earlier part this archive holds, written into without following a symlink, at the offset the
 * expected manifest gives (an `append/` entry without one is refused). No symlink may lead out once
 * every symlink of the tree is followed: each is resolved when it arrives against the links known
 * so far (this archive's, and those `links` says a newer archive of the chain already made in
 * `dest`), and all of them again at the end, so no order of entries gets one past; links are made
 * only after that, so not even a refused archive leaves one that leads out. Every entry the
 * manifest places in this archive must be present with its size and SHA-256, and nothing else may
 * be; the stored bytes must match `expected`; the embedded manifest must equal `expectedManifest`.
 * The data directory's own entry (`data/`) is `dest` itself, and must be there exactly when the
 * manifest has a `root`. An error is the first that happened, in the words of the stage it happened
 * in (a damaged archive, a full disk), labelled with the archive. It does not set owners, modes or
 * mtimes: entries are created with the restoring user's owner and private modes, and the caller
 * applies the final manifest's metadata once, in one pass, when every archive of a chain is in
 * place (tree-writer.ts applyTreeMetadata). It does not clean up: on failure `dest` may hold a
 * partial tree, which the caller owns (restore removes its staging dir), and it does not fsync
 * (restore swaps only after the whole tree verified).
 */
import type {Hash} from 'node:crypto'

import {posix} from 'node:path'
import {type Duplex, type Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import tar from 'tar-stream'

import type {DecryptOptions, Implementations, Manifest, PackProgress} from './types.js'

import {BrError, integrityError, labelled} from '../errors.js'
import {createDecryptStream, prepareDecrypt, TAMPERED, TRUNCATED} from './age.js'
import {Breather} from './breather.js'
import {FileSink} from './file-sink.js'
import {keepFreedMemory} from './heap.js'
import {checkAgainstManifest, HINT_DAMAGED, HINT_FORGED, type Seen} from './manifest-check.js'
import {decodeManifest, manifestTotals, matchesEncoding} from './manifest.js'
import {APPEND_PREFIX, DATA_PREFIX, MANIFEST_ENTRY} from './pack.js'
import {findEscapingSymlink, isSafePath, resolveSymlink, symlinkStaysInside} from './paths.js'
import {ReadWorker} from './read-worker.js'
import {type Expected, HashTap} from './tap.js'
import {TreeWriter} from './tree-writer.js'
import {ROOT_PATH} from './walk.js'
import {
  createParallelDecompressor,
  defaultDecompressThreads,
  parallelAvailable,
  ParallelDecompressor,
} from './zstd-parallel.js'

/** A manifest is ~200 bytes a file: 1 GiB is millions of files, and bounds what a forged header can make us hold. */
const MAX_MANIFEST = 1024 * 1024 * 1024
const PROGRESS_MS = 200

export interface ReadArchiveOptions {
  /**
   * verify of a chain read oldest first: the files of which this archive holds a part (path →
   * the whole file's hash, restore/chain-check.ts assemblingHashes); their bytes go into it too
   */
  assemble?: Map<string, Hash>
  /** null: the archive is not encrypted */
  decrypt: DecryptOptions | null
  /** where to write the tree (an empty or staging directory); undefined = verify only */
  dest?: string
  /** the stored object's sha256 and size, from the record */
  expected?: Expected
  /** the manifest from manifest.age: the embedded one must be identical */
  expectedManifest?: Manifest
  impl?: Implementations
  input: Readable
  /**
   * files a newer archive of the chain already created, of which this archive holds a part (an
   * assembled file, manifest `parts`): its bytes are written into them at their offset
   */
  into?: Set<string>
  /** names the archive in error messages, e.g. 'backup 0193…' */
  label?: string
  /**
   * symlinks already made in `dest` (path → target), by newer archives of a chain: the tree this
   * archive's links resolve in. Links this archive writes are added to it.
   */
  links?: Map<string, string>
  /** write only these paths (their parent dirs are created as needed); all entries are still verified */
  only?: Set<string>
  onProgress?: (p: PackProgress) => void
  /** zstd decompression threads for independent frames (zstd-parallel.ts); default: the cores here less one, 1-2 (defaultDecompressThreads) */
  parallelism?: number
  signal?: AbortSignal
  /** do not write these paths (e.g. already written from a newer backup of the chain); still verified */
  skip?: Set<string>
}

export interface ReadArchiveResult {
  /** file bytes read and verified (written too when `dest` is set) */
  bytes: number
  /** files read and verified */
  files: number
  manifest: Manifest
}

/** One entry as tar-stream's extractor yields it (its type is not exported). */
type TarEntry = tar.Extract extends AsyncIterable<infer T> ? T : never

export async function readArchive(options: ReadArchiveOptions): Promise<ReadArchiveResult> {
  keepFreedMemory()
  const tap = new HashTap({expected: options.expected})
  const stages: Array<[string, Duplex]> = [['tap', tap]]
  if (options.decrypt) {
    // typage in first if the keys need it, so they are parsed (and a bad one refused) before any byte is read.
    await prepareDecrypt(options.decrypt, options.impl?.age)
    stages.push(['age', createDecryptStream(options.decrypt, options.impl?.age)])
  }

  // Verify with one decompression thread (2 cores): that thread also hashes the files
  // (read-worker.ts). Not a restore: a write the disk holds up would hold up decompression too
  // (with a concurrent writer, 1 GiB restored in 4.95-5.62 s against 4.64-5.14 s apart).
  const oneWorker = (options.parallelism ?? defaultDecompressThreads()) === 1
  const verifying = options.dest === undefined
  const shared = oneWorker && verifying && parallelAvailable(options.impl?.zstd) ? new ReadWorker() : undefined
  const zstd = createParallelDecompressor({
    impl: options.impl?.zstd,
    releasing: true,
    shared,
    workers: options.parallelism,
  })
  stages.push(['zstd', zstd])
  const extract = tar.extract()

  // The first error tells what happened; the ones after it are its echoes down the pipeline.
  const errors: unknown[] = []
  const noted = new WeakSet<object>()
  const note = (stage: string, error: unknown) => {
    if (typeof error === 'object' && error !== null) {
      if (noted.has(error)) return
      noted.add(error)
    }

    errors.push(stageError(stage, error))
  }

  options.input.on('error', (error) => note('input', error))
  for (const [name, stream] of stages) stream.on('error', (error) => note(name, error))
  extract.on('error', (error) => note('tar', error))

  const feeding = pipeline([options.input, ...stages.map(([, s]) => s), extract], {signal: options.signal})
  const reader = new EntryReader(
    options,
    zstd instanceof ParallelDecompressor ? (position) => zstd.doneWith(position) : undefined,
    shared,
  )
  const consuming = consume(extract, reader).catch((error: unknown) => {
    note('consumer', error)
    extract.destroy(error as Error)
    throw error
  })
  const [fed, consumed] = await Promise.allSettled([feeding, consuming])
  if (fed.status === 'fulfilled' && consumed.status === 'fulfilled') {
    await shared?.close()
    return consumed.value
  }

  // No worker left running, no file left open: before the caller removes what was written.
  await reader.close()
  await shared?.close()
  if (options.signal?.aborted) throw new BrError('interrupted', 'interrupted', {cause: options.signal.reason})
  const reason = fed.status === 'rejected' ? fed.reason : (consumed as PromiseRejectedResult).reason
  // First in time, not first integrity error: a full disk must not pass for a damaged archive.
  const error = errors[0] ?? stageError('input', reason)
  throw withLabel(error, options.label)
}

/** Errors of the decoding stages mean damaged bytes; others (input, disk) stay what they are. */
function stageError(stage: string, error: unknown): unknown {
  if (error instanceof BrError) return error
  const message = error instanceof Error ? error.message : String(error)
  if ((error as Error)?.name === 'AbortError') return new BrError('interrupted', 'interrupted', {cause: error})
  switch (stage) {
    case 'age':
    case 'zstd': {
      const truncated = /end of (file|data)|ended in (the )?middle|unexpected end|premature/i.test(message)
      return new BrError(
        'integrity',
        truncated ? `${TRUNCATED} (${stage}: ${message})` : `${TAMPERED} (${stage}: ${message})`,
        {
          cause: error,
          suggestions: [HINT_DAMAGED],
        },
      )
    }

    case 'tar': {
      const truncated = /unexpected end/i.test(message)
      return new BrError('integrity', truncated ? `${TRUNCATED} (tar: ${message})` : `${TAMPERED} (tar: ${message})`, {
        cause: error,
        suggestions: [HINT_DAMAGED],
      })
    }

    default: {
      return error
    }
  }
}

function withLabel(error: unknown, label: string | undefined): unknown {
  if (!label || !(error instanceof BrError) || error.code === 'interrupted') return error
  return labelled(error, label)
}

async function consume(extract: tar.Extract, reader: EntryReader): Promise<ReadArchiveResult> {
  for await (const entry of extract) await reader.entry(entry)
  return reader.finish()
}

const refuse = (name: string, why: string) =>
  integrityError(`refusing archive entry ${JSON.stringify(name)}: ${why}`, HINT_FORGED)

/** Takes the tar's entries one by one: checks each name, hashes (and writes) it, then checks all against the manifest. */
class EntryReader {
  /** where each assembled file's appended bytes go (path → offset), from the expected manifest; built on first use */
  private appended: Map<string, number> | undefined
  private readonly breather: Breather
  /** symlinks in `dest`: those of newer archives, and the ones written here */
  private readonly destLinks: Map<string, string>
  /** this archive's own symlinks, path → target */
  private readonly links = new Map<string, string>()
  /** this archive's links to write, once every link has been resolved */
  private readonly linksToMake: Array<[string, string]> = []
  private manifestBytes: Buffer | undefined
  private readonly progress: PackProgress
  private reported = 0
  private readonly seen = new Map<string, Seen>()
  /** hashes every file, and writes those `writer` is given for (file-sink.ts) */
  private readonly sink: FileSink
  private readonly writer: TreeWriter | undefined

  /**
   * @param options what readArchive was given
   * @param doneWith told, after each chunk of a file is copied or posted (file-sink.ts) and after
   *   the manifest is read, that the tar stream before that point is done with (zstd-parallel.ts
   *   ParallelDecompressor.doneWith)
   * @param shared the worker that decompresses, for the sink to hash in (read-worker.ts)
   */
  constructor(
    private readonly options: ReadArchiveOptions,
    private readonly doneWith?: (position: number) => void,
    shared?: ReadWorker,
  ) {
    this.sink = new FileSink({shared})
    this.breather = new Breather(options.signal)
    this.destLinks = options.links ?? new Map()
    this.writer = options.dest === undefined ? undefined : new TreeWriter(options.dest)
    const own = options.expectedManifest ? manifestTotals(options.expectedManifest) : undefined
    this.progress = {bytesDone: 0, bytesTotal: own?.ownBytes ?? 0, filesDone: 0, filesTotal: own?.ownFiles ?? 0}
  }

  /** Stops the file sink's worker and closes its file: after a failure. */
  async close(): Promise<void> {
    await this.sink.close()
  }

  async entry(entry: TarEntry): Promise<void> {
    // Parsing runs on microtasks only (a 64 KiB read can inflate to thousands of tiny entries):
    // every ~50 ms, timers, I/O and SIGINT get their turn.
    await this.breather.breathe()
    const {header} = entry
    if (this.manifestBytes) throw refuse(header.name, `it comes after ${MANIFEST_ENTRY}, which must be last`)
    if (header.name === MANIFEST_ENTRY) {
      this.manifestBytes = await readManifest(entry)
      // Copied (concatenated): a large manifest's frames need not wait for the end.
      const start = dataStart(entry)
      if (start !== undefined) this.doneWith?.(start + this.manifestBytes.length)
      return
    }

    const {append, path} = this.checkName(header.name)
    const writer = this.wanted(path) ? this.writer : undefined
    if (path === ROOT_PATH && header.type !== 'directory')
      throw refuse(header.name, `it names the data directory itself, but is a ${header.type}`)
    if (append && header.type !== 'file')
      throw refuse(header.name, `appended bytes must be a file, not a ${header.type}`)
    switch (header.type) {
      case 'directory': {
        entry.resume()
        await writer?.dir(path)
        this.seen.set(path, {type: 'dir'})
        break
      }

      case 'file': {
        this.seen.set(path, await this.file(entry, path, writer, append))
        break
      }

      case 'symlink': {
        entry.resume()
        const target = header.linkname ?? ''
        if (!symlinkStaysInside(path, target))
          throw refuse(header.name, `it is a symlink leading outside the data directory (${target})`)
        // Against the tree so far; a later link could still change where it leads: finish() looks again.
        this.links.set(path, target)
        checkResolved(this.links, path)
        if (writer) {
          this.destLinks.set(path, target)
          checkResolved(this.destLinks, path)
          // Made at the end, once the whole tree is known not to lead out: never a link that escapes.
          this.linksToMake.push([path, target])
        }

        this.seen.set(path, {target, type: 'symlink'})
        break
      }

      default: {
        throw refuse(header.name, `its type ${header.type} is not a file, directory or symlink`)
      }
    }
  }

  async finish(): Promise<ReadArchiveResult> {
    if (!this.manifestBytes) throw integrityError(`${TRUNCATED}: it has no ${MANIFEST_ENTRY}`, HINT_DAMAGED)
    // Every file hashed (and written): the digests the manifest check needs.
    await this.sink.finish()
    // Every link again, now that the tree is complete: the order of entries cannot matter.
    for (const links of [this.links, this.destLinks]) {
      const escaping = findEscapingSymlink(links)
      if (escaping) throw refuse(DATA_PREFIX + escaping.path, `it is a symlink: ${escaping.why}`)
    }

    const expected = this.options.expectedManifest
    // With manifest.age at hand, the embedded copy must be its very bytes, less the record binding
    // only manifest.age carries: compared piece by piece (no second parse of a manifest that may
    // list a million files, no long block of the loop).
    const embedded = expected && {...expected, record: undefined}
    if (embedded && !(await matchesEncoding(embedded, this.manifestBytes, () => this.breather.breathe()))) {
      throw integrityError('the manifest inside the archive differs from manifest.age', HINT_FORGED)
    }

    const manifest = expected ?? decodeManifest(this.manifestBytes)

    await checkAgainstManifest(manifest, this.seen, this.breather)
    for (const [path, target] of this.linksToMake) {
      // eslint-disable-next-line no-await-in-loop -- links are few
      await this.writer?.symlink(path, target)
    }

    this.report(true)
    return {bytes: this.progress.bytesDone, files: this.progress.filesDone, manifest}
  }

  /** Where the appended bytes of `path` go in the file: after its earlier parts, as the manifest says. */
  private appendedAt(path: string): number {
    const name = APPEND_PREFIX + path
    this.appended ??= new Map(
      (this.options.expectedManifest?.entries ?? []).flatMap((e) =>
        e.type === 'file' && e.parts && e.in === this.options.expectedManifest!.backupId
          ? [[e.path, e.size - e.parts.at(-1)!.size] as const]
          : [],
      ),
    )
    const offset = this.appended.get(path)
    if (offset === undefined) throw refuse(name, 'its manifest has no earlier part to append it to')
    return offset
  }

  /**
   * The entry's path inside data/ (or, for a file's appended bytes, append/), if it is a name that
   * cannot reach outside the destination.
   */
  private checkName(name: string): {append: boolean; path: string} {
    const append = name.startsWith(APPEND_PREFIX)
    if (!append && !name.startsWith(DATA_PREFIX)) throw refuse(name, `it is outside ${DATA_PREFIX}`)
    const path = name.slice(append ? APPEND_PREFIX.length : DATA_PREFIX.length).replace(/\/$/, '')
    if (this.seen.has(path)) throw refuse(name, 'it appears twice')
    // `data/`: the data directory itself (dest), its mode, mtime and owner.
    if (path === ROOT_PATH && name.endsWith('/') && !append) return {append, path}
    if (!isSafePath(path)) throw refuse(name, 'its path is absolute, empty or has . or .. in it')
    for (let dir = posix.dirname(path); dir !== '.'; dir = posix.dirname(dir)) {
      if (this.links.has(dir)) throw refuse(name, `it lies beneath the symlink ${dir}`)
      if (this.seen.get(dir)?.type === 'file') throw refuse(name, `it lies beneath the file ${dir}`)
    }

    return {append, path}
  }

  private async file(entry: TarEntry, path: string, writer: TreeWriter | undefined, append: boolean): Promise<Seen> {
    // Its sha256 arrives when the sink has hashed its last byte (before finish() returns).
    const seen: Seen & {type: 'file'} = {...(append ? {append: true} : {}), sha256: '', size: 0, type: 'file'}
    const into = this.options.into?.has(path) ?? false
    const at = writer && (append || into) ? {into, offset: append ? this.appendedAt(path) : 0} : undefined
    this.sink.start(writer && (await writer.prepareFile(path)), seen, at)
    // Entries come in stream order, each file is read to its end, and the sink copies every
    // chunk: once a chunk is taken, nothing before its end is held anywhere.
    const start = dataStart(entry)
    const doneWith = start === undefined ? undefined : this.doneWith
    const whole = this.options.assemble?.get(path)
    for await (const chunk of entry as AsyncIterable<Buffer>) {
      whole?.update(chunk)
      seen.size += chunk.length
      this.progress.bytesDone += chunk.length
      const wait = this.sink.write(chunk)
      if (wait) await wait
      doneWith?.(start! + seen.size)
      this.report(false)
    }

    const wait = this.sink.end()
    if (wait) await wait
    this.progress.filesDone++
    return seen
  }

  private report(force: boolean): void {
    const now = Date.now()
    if (this.options.onProgress && (force || now - this.reported >= PROGRESS_MS)) {
      this.reported = now
      this.options.onProgress({...this.progress})
    }
  }

  private wanted(path: string): boolean {
    return (this.options.only === undefined || this.options.only.has(path)) && !this.options.skip?.has(path)
  }
}

/** Where the entry's bytes begin in the tar stream: tar-stream's header.byteOffset (read-frames.test.ts holds it to that). */
function dataStart(entry: TarEntry): number | undefined {
  const {byteOffset} = entry.header as {byteOffset?: unknown}
  return typeof byteOffset === 'number' ? byteOffset : undefined
}

async function readManifest(entry: TarEntry): Promise<Buffer> {
  const {header} = entry
  if (header.type !== 'file') throw refuse(header.name, `${MANIFEST_ENTRY} is a ${header.type}`)
  if (header.size > MAX_MANIFEST) throw refuse(header.name, `${header.size} bytes is too large for a manifest`)
  const chunks: Buffer[] = []
  for await (const chunk of entry) chunks.push(chunk as Buffer)
  // Buffer.concat copies, even one chunk: the caller says it is done with the stream's bytes.
  return Buffer.concat(chunks)
}

/** Refuses the link at `path` if, resolved through `links`, it leads outside or loops. */
function checkResolved(links: ReadonlyMap<string, string>, path: string): void {
  const where = resolveSymlink(links, path)
  if (where === 'inside') return
  throw refuse(
    DATA_PREFIX + path,
    where === 'outside'
      ? `it is a symlink: through the symlinks of the tree it leads outside the data directory (${links.get(path)})`
      : `it is a symlink: it is part of a loop of symlinks (${links.get(path)})`,
  )
}
