/**
 * The read side, one pipeline for verify and restore: stored bytes → sha256/size tap → age
 * decrypt → zstd → tar → for each entry, hash the bytes while discarding them (verify) or while
 * writing them under `dest` (restore). MANIFEST.json comes last, so every file's hash is kept
 * and compared with it once it arrives.
 *
 * Guarantees: nothing is written outside `dest`: entries named with `..`, absolute or empty
 * segments, names outside data/, types other than file/dir/symlink, entries beneath a symlink
 * (from the archive or already in `dest`), and duplicates are refused (integrity, exit 3); files
 * are created exclusively, never through or over what is there. No symlink may lead out once
 * every symlink of the tree is followed: each is resolved when it arrives against the links known
 * so far (this archive's, and those `links` says a newer archive of the chain already made in
 * `dest`), and all of them again at the end, so no order of entries gets one past; links are
 * made only after that, so not even a refused archive leaves one that leads out. Every entry
 * the manifest places in this archive must be present with its size and SHA-256, and nothing
 * else may be; the stored bytes must match `expected`; the embedded manifest must equal
 * `expectedManifest`. The data directory's own entry (`data/`) is `dest` itself, and must be
 * there exactly when the manifest has a `root`. Owners, modes and mtimes come from the manifest,
 * set at the end (owners as `owners` says: see owners.ts), without setuid, setgid and sticky bits
 * unless `keepSpecialModes`. Runs of 64 KiB of zeros are left as holes,
 * so a sparse file stays sparse. It does not clean up: on failure `dest` may hold a partial tree,
 * which the caller owns (restore removes its staging dir), and it does not fsync (restore swaps
 * only after the whole tree verified).
 */
import {createHash} from 'node:crypto'
import {
  chmodSync,
  chownSync,
  closeSync,
  ftruncateSync,
  lchownSync,
  lutimesSync,
  openSync,
  utimesSync,
  writeSync,
} from 'node:fs'
import {lstat, mkdir, symlink} from 'node:fs/promises'
import {join, posix} from 'node:path'
import {type Duplex, type Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import tar from 'tar-stream'

import type {OwnerPlan} from './owners.js'
import type {DecryptOptions, DirEntry, Implementations, Manifest, Owner, PackProgress} from './types.js'

import {BrError, integrityError} from '../errors.js'
import {createDecryptStream, TAMPERED, TRUNCATED} from './age.js'
import {Breather} from './breather.js'
import {createDecompressor} from './compress.js'
import {
  decodeManifest,
  findEscapingSymlink,
  isSafePath,
  manifestTotals,
  matchesEncoding,
  resolveSymlink,
  symlinkStaysInside,
} from './manifest.js'
import {DATA_PREFIX, MANIFEST_ENTRY, ROOT_PATH} from './pack.js'
import {type Expected, HashTap} from './tap.js'

/** A manifest is ~200 bytes a file: 1 GiB is millions of files, and bounds what a forged header can make us hold. */
const MAX_MANIFEST = 1024 * 1024 * 1024
const PROGRESS_MS = 200
const HINT_DAMAGED = 'the stored copy is damaged: use another copy or another backup'
const HINT_FORGED = 'the archive was not written by moctl br, or was tampered with'
/**
 * Modes are taken modulo this by default: permission bits only; setuid, setgid and sticky only
 * with keepSpecialModes (modulo SPECIAL_MODE_BITS). A modulo of a power of two is a mask.
 */
export const PLAIN_MODE_BITS = 0o1000
export const SPECIAL_MODE_BITS = 0o1_0000
/** Zero runs this long, aligned in the file, are skipped and left as holes. */
const HOLE_BLOCK = 64 * 1024
const ZEROS = Buffer.alloc(HOLE_BLOCK)

export interface ReadArchiveOptions {
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
  /** keep setuid, setgid and sticky bits from the manifest (a MatrixOne data dir has none) */
  keepSpecialModes?: boolean
  /** names the archive in error messages, e.g. 'backup 0193…' */
  label?: string
  /**
   * symlinks already made in `dest` (path → target), by newer archives of a chain: the tree this
   * archive's links resolve in. Links this archive writes are added to it.
   */
  links?: Map<string, string>
  /** false: leave owners, modes and mtimes to the caller (a chain sets them once, from the final manifest) */
  metadata?: boolean
  /** write only these paths (their parent dirs are created as needed); all entries are still verified */
  only?: Set<string>
  onProgress?: (p: PackProgress) => void
  /** whose the written entries become (owners.ts planOwners); by default they stay the restoring user's */
  owners?: OwnerPlan
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

type Seen = {sha256: string; size: number; type: 'file'} | {target: string; type: 'symlink'} | {type: 'dir'}

export async function readArchive(options: ReadArchiveOptions): Promise<ReadArchiveResult> {
  const tap = new HashTap({expected: options.expected})
  const stages: Array<[string, Duplex]> = [['tap', tap]]
  if (options.decrypt) stages.push(['age', createDecryptStream(options.decrypt, options.impl?.age)])
  stages.push(['zstd', createDecompressor(options.impl?.zstd)])
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
  const consuming = consume(extract, options).catch((error: unknown) => {
    note('consumer', error)
    extract.destroy(error as Error)
    throw error
  })
  const [fed, consumed] = await Promise.allSettled([feeding, consuming])
  if (fed.status === 'fulfilled' && consumed.status === 'fulfilled') return consumed.value

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
  return new BrError(error.code, `${label}: ${error.message}`, {cause: error.cause, suggestions: error.suggestions})
}

async function consume(extract: tar.Extract, options: ReadArchiveOptions): Promise<ReadArchiveResult> {
  const reader = new EntryReader(options)
  for await (const entry of extract) await reader.entry(entry)
  return reader.finish()
}

const refuse = (name: string, why: string) =>
  integrityError(`refusing archive entry ${JSON.stringify(name)}: ${why}`, HINT_FORGED)

/** Takes the tar's entries one by one: checks each name, hashes (and writes) it, then checks all against the manifest. */
class EntryReader {
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
  private readonly writer: TreeWriter | undefined
  private readonly written = new Set<string>()

  constructor(private readonly options: ReadArchiveOptions) {
    this.breather = new Breather(options.signal)
    this.destLinks = options.links ?? new Map()
    this.writer =
      options.dest === undefined
        ? undefined
        : new TreeWriter(options.dest, {
            modeBits: options.keepSpecialModes ? SPECIAL_MODE_BITS : PLAIN_MODE_BITS,
            owners: options.owners,
          })
    const own = options.expectedManifest ? manifestTotals(options.expectedManifest) : undefined
    this.progress = {bytesDone: 0, bytesTotal: own?.ownBytes ?? 0, filesDone: 0, filesTotal: own?.ownFiles ?? 0}
  }

  async entry(entry: TarEntry): Promise<void> {
    // Parsing runs on microtasks only (a 64 KiB read can inflate to thousands of tiny entries):
    // every ~50 ms, timers, I/O and SIGINT get their turn.
    await this.breather.breathe()
    const {header} = entry
    if (this.manifestBytes) throw refuse(header.name, `it comes after ${MANIFEST_ENTRY}, which must be last`)
    if (header.name === MANIFEST_ENTRY) {
      this.manifestBytes = await readManifest(entry)
      return
    }

    const path = this.checkName(header.name)
    const writer = this.wanted(path) ? this.writer : undefined
    if (path === ROOT_PATH && header.type !== 'directory')
      throw refuse(header.name, `it names the data directory itself, but is a ${header.type}`)
    switch (header.type) {
      case 'directory': {
        entry.resume()
        await writer?.dir(path)
        this.seen.set(path, {type: 'dir'})
        break
      }

      case 'file': {
        this.seen.set(path, await this.file(entry, path, writer))
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

    if (writer) this.written.add(path)
  }

  async finish(): Promise<ReadArchiveResult> {
    if (!this.manifestBytes) throw integrityError(`${TRUNCATED}: it has no ${MANIFEST_ENTRY}`, HINT_DAMAGED)
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

    if (this.options.metadata !== false) await this.writer?.applyMetadata(manifest, this.written, this.breather)
    this.report(true)
    return {bytes: this.progress.bytesDone, files: this.progress.filesDone, manifest}
  }

  /** The entry's path inside data/, if it is a name that cannot reach outside the destination. */
  private checkName(name: string): string {
    if (!name.startsWith(DATA_PREFIX)) throw refuse(name, `it is outside ${DATA_PREFIX}`)
    const path = name.slice(DATA_PREFIX.length).replace(/\/$/, '')
    if (this.seen.has(path)) throw refuse(name, 'it appears twice')
    // `data/`: the data directory itself (dest), its mode, mtime and owner.
    if (path === ROOT_PATH && name.endsWith('/')) return path
    if (!isSafePath(path)) throw refuse(name, 'its path is absolute, empty or has . or .. in it')
    for (let dir = posix.dirname(path); dir !== '.'; dir = posix.dirname(dir)) {
      if (this.links.has(dir)) throw refuse(name, `it lies beneath the symlink ${dir}`)
      if (this.seen.get(dir)?.type === 'file') throw refuse(name, `it lies beneath the file ${dir}`)
    }

    return path
  }

  private async file(entry: TarEntry, path: string, writer: TreeWriter | undefined): Promise<Seen> {
    const hash = createHash('sha256')
    let size = 0
    const file = await writer?.file(path)
    try {
      for await (const chunk of entry as AsyncIterable<Buffer>) {
        hash.update(chunk)
        size += chunk.length
        this.progress.bytesDone += chunk.length
        file?.write(chunk)
        this.report(false)
      }
    } finally {
      file?.close()
    }

    this.progress.filesDone++
    return {sha256: hash.digest('hex'), size, type: 'file'}
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

async function readManifest(entry: TarEntry): Promise<Buffer> {
  const {header} = entry
  if (header.type !== 'file') throw refuse(header.name, `${MANIFEST_ENTRY} is a ${header.type}`)
  if (header.size > MAX_MANIFEST) throw refuse(header.name, `${header.size} bytes is too large for a manifest`)
  const chunks: Buffer[] = []
  for await (const chunk of entry) chunks.push(chunk as Buffer)
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

/** Every entry the manifest puts in this archive is here, equal; nothing else is. */
async function checkAgainstManifest(manifest: Manifest, seen: Map<string, Seen>, breather: Breather): Promise<void> {
  const damaged = (message: string) => integrityError(message, HINT_DAMAGED)
  const root = seen.get(ROOT_PATH)
  if (manifest.root && !root) throw damaged(`the data directory's own entry ${DATA_PREFIX} is missing from the archive`)
  if (root && !manifest.root) {
    throw integrityError(
      `the archive has an entry ${DATA_PREFIX} for the data directory, its manifest none`,
      HINT_FORGED,
    )
  }

  seen.delete(ROOT_PATH)
  for (const e of manifest.entries) {
    // eslint-disable-next-line no-await-in-loop -- rarely: lets SIGINT in during a million entries
    await breather.breathe()
    // In a chain, files whose bytes live in an older backup are listed but not here.
    if (e.type === 'file' && e.in !== manifest.backupId) {
      if (seen.has(e.path))
        throw damaged(`${e.path} is in the archive, but its manifest says its bytes are in backup ${e.in}`)
      continue
    }

    const got = seen.get(e.path)
    if (!got) throw damaged(`${e.path} is in the manifest but missing from the archive`)
    if (got.type !== e.type) throw damaged(`${e.path} is a ${got.type} in the archive, a ${e.type} in the manifest`)
    if (e.type === 'file' && got.type === 'file') {
      if (got.size !== e.size) throw damaged(`${e.path} is ${got.size} bytes in the archive, ${e.size} in the manifest`)
      if (got.sha256 !== e.sha256) throw damaged(`${e.path} does not match its SHA-256 in the manifest`)
    }

    if (e.type === 'symlink' && got.type === 'symlink' && got.target !== e.target) {
      throw damaged(`symlink ${e.path} points to ${got.target} in the archive, ${e.target} in the manifest`)
    }

    seen.delete(e.path)
  }

  const extra = seen.keys().next()
  if (!extra.done) throw integrityError(`${extra.value} is in the archive but not in its manifest`, HINT_FORGED)
}

/**
 * Writes entries under `root`, never outside it: every parent directory is checked once (lstat:
 * a real directory, not a symlink planted in a non-empty dest) before anything is created in it,
 * and files and symlinks are created exclusively.
 */
class TreeWriter {
  private readonly checked = new Set<string>()
  /** the start of a file's current 64 KiB block, when a chunk ended inside it */
  private readonly pending = Buffer.allocUnsafe(HOLE_BLOCK)

  constructor(
    private readonly root: string,
    private readonly metadata: {modeBits: number; owners?: OwnerPlan},
  ) {}

  /** Owners, modes and mtimes from the manifest for what was written (see applyTreeMetadata). */
  async applyMetadata(manifest: Manifest, written: Set<string>, breather: Breather): Promise<void> {
    await applyTreeMetadata(this.root, manifest, {...this.metadata, breather, only: written})
  }

  async dir(path: string): Promise<void> {
    await this.ensureDir(path === ROOT_PATH ? '.' : path)
  }

  /**
   * A new file, opened exclusively (never through or over an existing name). Written
   * synchronously: into the page cache that is a memcpy, where a thread-pool write waits for a
   * core behind zstd and the decryptor (measured 2x slower on 2 cores). Aligned 64 KiB blocks of
   * zeros are not written but skipped, and the size set at the end: holes, as the file had.
   */
  async file(path: string): Promise<{close(): void; write(chunk: Buffer): void}> {
    await this.ensureDir(posix.dirname(path))
    const fd = openSync(this.abs(path), 'wx', 0o600)
    const {pending} = this
    let position = 0 // bytes of the file taken so far
    let held = 0 // of which the last `held` are in `pending`, not yet written
    let end = 0 // bytes actually written or skipped up to, in the file
    const put = (bytes: Buffer, at: number) => {
      for (let offset = 0; offset < bytes.length;)
        offset += writeSync(fd, bytes, offset, bytes.length - offset, at + offset)
    }

    /** Writes a run of whole blocks starting at file offset `at`, skipping the zero ones. */
    const blocks = (bytes: Buffer, at: number) => {
      let start = 0 // of the run of non-zero blocks not yet written
      for (let offset = 0; offset < bytes.length; offset += HOLE_BLOCK) {
        const block = bytes.subarray(offset, offset + HOLE_BLOCK)
        if (block.length === HOLE_BLOCK && block.equals(ZEROS)) {
          if (offset > start) put(bytes.subarray(start, offset), at + start)
          start = offset + HOLE_BLOCK
        }
      }

      if (start < bytes.length) put(bytes.subarray(start), at + start)
      end = at + bytes.length
    }

    return {
      close() {
        try {
          if (held > 0) blocks(pending.subarray(0, held), position - held)
          if (end < position) throw new Error('unpack: bytes left unwritten')
          // A file that ends in a hole: the skipped blocks still count.
          ftruncateSync(fd, position)
        } finally {
          closeSync(fd)
        }
      },
      write(chunk: Buffer) {
        let rest = chunk
        if (held > 0) {
          // Complete the block begun by an earlier chunk.
          const take = Math.min(HOLE_BLOCK - held, rest.length)
          rest.copy(pending, held, 0, take)
          held += take
          position += take
          rest = rest.subarray(take)
          if (held < HOLE_BLOCK) return
          blocks(pending, position - HOLE_BLOCK)
          held = 0
        }

        const whole = rest.length - (rest.length % HOLE_BLOCK)
        if (whole > 0) blocks(rest.subarray(0, whole), position)
        position += whole
        if (whole < rest.length) {
          rest.copy(pending, 0, whole)
          held = rest.length - whole
          position += held
        }
      },
    }
  }

  async symlink(path: string, target: string): Promise<void> {
    await this.ensureDir(posix.dirname(path))
    await symlink(target, this.abs(path))
  }

  private abs(path: string): string {
    return path === '.' ? this.root : join(this.root, ...path.split('/'))
  }

  private async ensureDir(path: string): Promise<void> {
    if (this.checked.has(path)) return
    if (path !== '.') await this.ensureDir(posix.dirname(path))
    const abs = this.abs(path)
    try {
      await mkdir(abs, {mode: 0o700})
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const info = await lstat(abs)
      if (!info.isDirectory()) {
        throw integrityError(
          `refusing to write beneath ${path === '.' ? abs : path}: it is a ${info.isSymbolicLink() ? 'symlink' : 'non-directory'} in the destination`,
          'restore into an empty directory',
        )
      }
    }

    this.checked.add(path)
  }
}

/**
 * Owners (as `owners` plans them), modes (modulo `modeBits`) and mtimes of the manifest's entries
 * under `root`, all of them or those in `only`; the data directory's own (`root` of the manifest,
 * path '') goes to `root` itself. Dirs last and deepest first, since writing into a dir changes
 * its mtime. chown before chmod: chown clears setuid and setgid bits. Symlinks get lchown and
 * lutimes (their mode means nothing on Linux). Synchronous calls (thousands of tiny syscalls,
 * each a thread-pool round trip otherwise), with a pause for the event loop every ~50 ms.
 */
export async function applyTreeMetadata(
  root: string,
  manifest: Pick<Manifest, 'entries' | 'root'>,
  options: {breather: Breather; modeBits: number; only?: Set<string>; owners?: OwnerPlan},
): Promise<void> {
  const {breather, modeBits, only, owners} = options
  const abs = (path: string) => (path === ROOT_PATH ? root : join(root, ...path.split('/')))
  const chown = (path: string, owner?: Owner, link = false) => {
    const ids = owners?.ids(owner)
    if (!ids) return
    if (link) lchownSync(abs(path), ids.uid, ids.gid)
    else chownSync(abs(path), ids.uid, ids.gid)
  }

  const dirs: Array<{depth: number; entry: Omit<DirEntry, 'type'>}> = []
  for (const e of manifest.entries) {
    // eslint-disable-next-line no-await-in-loop -- rarely: lets SIGINT in
    await breather.breathe()
    if (only && !only.has(e.path)) continue
    // Seconds as a number keep the sub-millisecond part that a Date would drop.
    const time = e.mtimeMs / 1000
    if (e.type === 'dir') {
      dirs.push({depth: e.path.split('/').length, entry: e})
    } else if (e.type === 'file') {
      chown(e.path, e.owner)
      chmodSync(abs(e.path), e.mode % modeBits)
      utimesSync(abs(e.path), time, time)
    } else {
      chown(e.path, e.owner, true)
      lutimesSync(abs(e.path), time, time)
    }
  }

  dirs.sort((a, b) => b.depth - a.depth)
  // The data directory itself, last of all (a manifest without `root` still gets --chown).
  if (!only || only.has(ROOT_PATH)) {
    const top = manifest.root
    if (top) dirs.push({depth: 0, entry: {...top, path: ROOT_PATH}})
    else if (owners?.ids()) chown(ROOT_PATH)
  }

  for (const {entry: d} of dirs) {
    // eslint-disable-next-line no-await-in-loop -- rarely: lets SIGINT in
    await breather.breathe()
    chown(d.path, d.owner)
    chmodSync(abs(d.path), d.mode % modeBits)
    utimesSync(abs(d.path), d.mtimeMs / 1000, d.mtimeMs / 1000)
  }
}
