/**
 * Where a read archive's file contents go: each file's bytes are hashed (SHA-256, for the
 * manifest check) and, for a restore, written to a new file, on a worker thread, so that the main
 * thread (tar, the stages before it) does neither. The main thread copies the chunks of the files
 * into batches of 1 MiB, with the list of what they are (open this file, so many bytes of it,
 * close it); the worker hashes and writes a whole batch and gives the buffer back, with the
 * SHA-256 of each file it closed. A file's bytes in one batch are one write (holes aside): the
 * tar's small chunks are coalesced. With a shared worker (read-worker.ts: the thread that also
 * decompresses the archive), a chunk that lies in one of its frame buffers is not copied: the
 * worker is told where it is ([REF]), at once, and the sink neither starts nor stops that worker.
 *
 * Guarantees: at most IN_FLIGHT batches exist (being filled, queued or in the worker), so the bytes
 * in flight are bounded whatever the file sizes, and `write` makes its caller wait (the tar, hence
 * decompression) while the disk is behind. Files are created exclusively ('wx', mode 0600: never
 * through a symlink or over what is there), by the absolute path the caller gives (which checked
 * its parents: tree-writer.ts prepareFile); the one exception is a part of a file that a newer
 * archive of the same chain created (restore/chain.ts), opened for writing without following a
 * symlink. Runs of 64 KiB of zeros, aligned from where the bytes start, are left as holes (a file's
 * part lands in a hole no other part writes) and the size set at the end. The first error (a full
 * disk, EIO, an existing name) is the failure, as the file system gave it (code, syscall, path),
 * raised by the next call and by `finish`; nothing is written after it. `close` (or `finish`)
 * leaves no worker running and no file open: the worker closes its file before it exits, and both
 * wait for that. A worker that dies with a file open (terminated, out of memory) leaves no fd
 * either: Node closes the fds a worker opened when it exits (Worker's `trackUnmanagedFds`, on by
 * default; a test holds the sink to it). When every file of an archive fits in one batch, it is
 * done on the calling thread and no worker starts.
 *
 * Not: it does not check names, sizes or hashes (read.ts and manifest-check.ts do), does not
 * fsync, and does not remove what it wrote after a failure (the caller owns the directory).
 */
import {createRequire} from 'node:module'
import {Worker} from 'node:worker_threads'

/** Bytes per batch: one message each way per MiB; a 1 MiB write is near the page cache's best. */
const BATCH_BYTES = 1024 * 1024
/** Batches in existence at once: one being filled, up to three queued or being written. */
const IN_FLIGHT = 4
/** A batch is sent at this many operations too, so that tiny files' hashes come back in time. */
const MAX_OPS = 4096
/**
 * A chunk in a shared worker's frame buffer goes to it as a REF from this size up; a smaller one
 * is copied into the batch as before, so that many small files cost one message a batch, not one
 * a file (a REF is posted at once). 64 KiB: at most 16 Ki messages per GiB.
 */
const MIN_REF = 64 * 1024

/**
 * Operations of a batch: [OPEN, file id, path ('' = hash only), offset, into], [DATA, start, end],
 * [CLOSE], and [REF, shared buffer, start, end]: bytes the worker reads where they are (the frame
 * it decompressed them into, read-worker.ts). `into` 1: the file exists (a newer archive of a
 * chain made it), the bytes go in at `offset`; 0: it is created, its bytes start at `offset` (a
 * hole before them).
 */
const OPEN = 0
const DATA = 1
const CLOSE = 2
const REF = 3
export type Op =
  | [typeof CLOSE]
  | [typeof DATA, number, number]
  | [typeof OPEN, number, string, number, 0 | 1]
  | [typeof REF, SharedArrayBuffer, number, number]

/** What the worker (or the inline processor) knows of an error: enough to rebuild an ErrnoException. */
interface ErrorInfo {
  code?: string
  errno?: number
  message: string
  path?: string
  syscall?: string
}

/** A batch's answer; `buffer` is null for a batch of operations only (a shared worker's REFs). */
type Reply =
  | {buffer: ArrayBuffer | null; done: Array<[number, string]>; kind?: 'batch'}
  | {buffer: ArrayBuffer | null; error: ErrorInfo; kind?: 'batch'}

/** Where a file's SHA-256 (hex) goes once its last byte is hashed. */
export interface FileDigest {
  sha256: string
}

export interface FileSinkOptions {
  /** bytes per batch (tests: small, to reach the worker with small files) */
  batchBytes?: number
  /**
   * the worker that also decompresses the archive (read-worker.ts): chunks in its shared frame
   * buffers go to it as REFs, posted at once, not copied; its owner ends it, not the sink
   */
  shared?: SharedReadWorker
}

/** What the file sink needs of read-worker.ts's ReadWorker (an interface: that module imports this one). */
export interface SharedReadWorker {
  /** the worker, started on first use */
  start(): Worker
}

/** Worker threads started and not yet exited, in this process (tests check that none is left). */
let live = 0
export const liveSinkWorkers = (): number => live

const require = createRequire(import.meta.url)

/**
 * The batch processor, self-contained (its source is the worker's): hashes and writes the files
 * of a batch, keeping the one file a batch may leave open for the next. `abort` closes that file.
 * `answer` is a worker's reply to a batch: the files it closed, or the first error (what the
 * file system said of it) after which nothing more is processed, every later batch answered as
 * done with nothing.
 */
export function makeBatchProcessor(req: NodeJS.Require) {
  const {createHash} = req('node:crypto') as typeof import('node:crypto')
  const fs = req('node:fs') as typeof import('node:fs')
  // The op codes again: this function's source is the worker's, without the module around it.
  const OPEN_OP: typeof OPEN = 0
  const DATA_OP: typeof DATA = 1
  const REF_OP: typeof REF = 3
  const HOLE_BLOCK = 64 * 1024
  const ZEROS = Buffer.alloc(HOLE_BLOCK)
  /** the start of the open file's current 64 KiB block, when a batch ended inside it */
  const pending = Buffer.allocUnsafe(HOLE_BLOCK)
  interface Open {
    end: number // bytes actually written or skipped up to, in the file
    fd: number // -1: hash only
    hash: ReturnType<typeof createHash>
    held: number // of which the last `held` are in `pending`, not yet written
    id: number
    into: boolean // written into a file that exists: its size is already set
    position: number // the offset in the file of the bytes taken so far
  }
  let file: Open | undefined
  let failed = false

  const put = (fd: number, bytes: Uint8Array, at: number) => {
    for (let offset = 0; offset < bytes.length;)
      offset += fs.writeSync(fd, bytes, offset, bytes.length - offset, at + offset)
  }

  /** Writes a run of whole blocks starting at file offset `at`, skipping the zero ones. */
  const blocks = (f: Open, bytes: Buffer, at: number) => {
    let start = 0 // of the run of non-zero blocks not yet written
    for (let offset = 0; offset < bytes.length; offset += HOLE_BLOCK) {
      const block = bytes.subarray(offset, offset + HOLE_BLOCK)
      if (block.length === HOLE_BLOCK && block.equals(ZEROS)) {
        if (offset > start) put(f.fd, bytes.subarray(start, offset), at + start)
        start = offset + HOLE_BLOCK
      }
    }

    if (start < bytes.length) put(f.fd, bytes.subarray(start), at + start)
    f.end = at + bytes.length
  }

  const write = (f: Open, chunk: Buffer) => {
    f.hash.update(chunk)
    if (f.fd < 0) {
      f.position += chunk.length
      return
    }

    let rest = chunk
    if (f.held > 0) {
      // Complete the block begun by an earlier batch.
      const take = Math.min(HOLE_BLOCK - f.held, rest.length)
      rest.copy(pending, f.held, 0, take)
      f.held += take
      f.position += take
      rest = rest.subarray(take)
      if (f.held < HOLE_BLOCK) return
      blocks(f, pending, f.position - HOLE_BLOCK)
      f.held = 0
    }

    const whole = rest.length - (rest.length % HOLE_BLOCK)
    if (whole > 0) blocks(f, rest.subarray(0, whole), f.position)
    f.position += whole
    if (whole < rest.length) {
      // Kept for the next batch: the buffer goes back to be refilled.
      rest.copy(pending, 0, whole)
      f.held = rest.length - whole
      f.position += f.held
    }
  }

  const close = (f: Open): string => {
    file = undefined
    if (f.fd >= 0) {
      try {
        if (f.held > 0) blocks(f, pending.subarray(0, f.held), f.position - f.held)
        if (f.end < f.position) throw new Error('file sink: bytes left unwritten')
        // A file that ends in a hole: the skipped blocks still count. One written into keeps its size.
        if (!f.into) fs.ftruncateSync(f.fd, f.position)
      } finally {
        fs.closeSync(f.fd)
      }
    }

    return f.hash.digest('hex')
  }

  const abort = () => {
    const f = file
    file = undefined
    if (f && f.fd >= 0) fs.closeSync(f.fd)
  }

  const processBatch = (bytes: Buffer, ops: Op[]): Array<[number, string]> => {
    const done: Array<[number, string]> = []
    for (const op of ops) {
      switch (op[0]) {
        case DATA_OP: {
          write(file!, bytes.subarray(op[1], op[2]))
          break
        }

        case OPEN_OP: {
          const [, id, path, at, into] = op
          const {O_NOFOLLOW, O_WRONLY} = fs.constants
          // eslint-disable-next-line no-bitwise -- open(2)'s flags
          const flags = O_WRONLY | O_NOFOLLOW
          const fd = path === '' ? -1 : into ? fs.openSync(path, flags) : fs.openSync(path, 'wx', 0o600)
          file = {end: at, fd, hash: createHash('sha256'), held: 0, id, into: into === 1, position: at}
          break
        }

        case REF_OP: {
          write(file!, Buffer.from(op[1], op[2], op[3] - op[2]))
          break
        }

        default: {
          done.push([file!.id, close(file!)])
        }
      }
    }

    return done
  }

  return {
    abort,
    answer(bytes: Buffer, ops: Op[]): {done: Array<[number, string]>} | {error: ErrorInfo} {
      if (failed) return {done: []}
      try {
        return {done: processBatch(bytes, ops)}
      } catch (error) {
        failed = true
        try {
          abort()
        } catch {}

        const e = error as NodeJS.ErrnoException
        return {error: {code: e.code, errno: e.errno, message: String(e.message), path: e.path, syscall: e.syscall}}
      }
    },
    process: processBatch,
  }
}

/** The worker: batches in order, each buffer transferred back; after an error, buffers only. */
function workerMain(make: typeof makeBatchProcessor) {
  const {parentPort} = require('node:worker_threads') as typeof import('node:worker_threads')
  const processor = make(require)
  parentPort!.on('message', (m: {buffer: ArrayBuffer; length: number; ops: Op[]} | {close: true}) => {
    if ('close' in m) {
      processor.abort()
      parentPort!.close()
      return
    }

    const reply = processor.answer(Buffer.from(m.buffer, 0, m.length), m.ops)
    parentPort!.postMessage({buffer: m.buffer, ...reply}, [m.buffer])
  })
}

const WORKER_SOURCE = `(${workerMain.toString()})((${makeBatchProcessor.toString()}))`

/** The error the file system gave, on this thread: message, code, errno, syscall and path. */
function rebuild(info: ErrorInfo): Error {
  return Object.assign(new Error(info.message), {
    code: info.code,
    errno: info.errno,
    path: info.path,
    syscall: info.syscall,
  })
}

const NEW_FILE = {into: false, offset: 0}

/** A batch's place while no buffer is free. */
const NO_BATCH = Buffer.alloc(0)

/** Hashes (and writes) one file after another; see the module header. */
export class FileSink {
  /** the batch being filled; NO_BATCH while every buffer is in the worker */
  private batch: Buffer
  private readonly batchBytes: number
  private closed = false
  private failure: Error | undefined
  /** files whose digest has not come back yet, by id */
  private readonly files = new Map<number, FileDigest>()
  /** buffers back from the worker */
  private readonly free: Buffer[] = []
  /** buffers allocated, at most IN_FLIGHT */
  private made = 1
  private nextId = 0
  private open = false
  private ops: Op[] = []
  /** batches in the worker */
  private sent = 0
  private readonly shared: SharedReadWorker | undefined
  private used = 0
  /** the caller waiting for a batch to come back (it waits for one thing at a time) */
  private wake: (() => void) | undefined
  private worker: undefined | Worker
  private workerExit: Promise<void> | undefined

  constructor(options: FileSinkOptions = {}) {
    this.batchBytes = options.batchBytes ?? BATCH_BYTES
    this.batch = Buffer.allocUnsafeSlow(this.batchBytes)
    this.shared = options.shared
  }

  /**
   * Stops the worker (which closes its open file first) and waits for it to exit; after a failure,
   * or to abandon. A shared worker is its owner's to stop (read-worker.ts close): only marked here.
   */
  async close(): Promise<void> {
    this.closed = true
    const {worker} = this
    if (!worker) return
    this.worker = undefined
    if (this.shared) return
    worker.postMessage({close: true})
    await this.workerExit
  }

  /** The file begun by `start` is complete; a promise when the caller must wait. */
  end(): Promise<void> | undefined {
    this.check()
    this.ops.push([CLOSE])
    this.open = false
    if (this.ops.length < MAX_OPS) return undefined
    return this.mustWait() ? this.later(() => this.send()) : this.send()
  }

  /** Sends what is left, waits until every file is hashed (and written and closed), and stops the worker. */
  async finish(): Promise<void> {
    this.check()
    if (this.open) throw new Error('file sink: finish with a file still open')
    if (!this.worker) {
      if (this.ops.length > 0) this.inline()
      return
    }

    if (this.ops.length > 0) {
      if (this.mustWait()) await this.later(() => this.send())
      else this.send()
    }

    while (this.sent > 0) {
      // eslint-disable-next-line no-await-in-loop -- woken once per returned batch
      await this.returned()
      this.check()
    }

    await this.close()
    if (this.failure) throw this.failure
  }

  /**
   * Begins a file: written at `path` (absolute, its parent checked), or only hashed when undefined;
   * its bytes from `at.offset` on, into the file that is there when `at.into` (a part of a file a
   * newer archive of the chain created), else in a new file.
   */
  start(path: string | undefined, digest: FileDigest, at: {into: boolean; offset: number} = NEW_FILE): void {
    this.check()
    const id = this.nextId++
    this.files.set(id, digest)
    this.open = true
    this.ops.push([OPEN, id, path ?? '', at.offset, at.into ? 1 : 0])
  }

  /**
   * Takes a chunk of the current file (copied: the caller may reuse it); a promise when the caller
   * must wait. A chunk of MIN_REF or more in a shared worker's frame buffer is not copied: the
   * worker is told where it is, at once, so that whatever the caller posts to that worker next
   * (the frame that fills that buffer again) comes after it.
   */
  write(chunk: Buffer): Promise<void> | undefined {
    this.check()
    if (this.shared && chunk.length >= MIN_REF && chunk.buffer instanceof SharedArrayBuffer) {
      this.ops.push([REF, chunk.buffer, chunk.byteOffset, chunk.byteOffset + chunk.length])
      return this.send()
    }

    let offset = 0
    while (offset < chunk.length) {
      if (this.batch === NO_BATCH && !this.takeFree()) {
        const rest = chunk.subarray(offset)
        return this.later(() => this.write(rest))
      }

      const take = Math.min(chunk.length - offset, this.batchBytes - this.used)
      chunk.copy(this.batch, this.used, offset, offset + take)
      this.ops.push([DATA, this.used, this.used + take])
      this.used += take
      offset += take
      if (this.used === this.batchBytes) this.send()
    }

    return undefined
  }

  private check(): void {
    if (this.failure) throw this.failure
    if (this.closed) throw new Error('file sink: used after close')
  }

  /** A small archive's one batch, on this thread: no worker for a few files. */
  private inline(): void {
    const processor = makeBatchProcessor(require)
    try {
      this.settle(processor.process(this.batch.subarray(0, this.used), this.ops))
    } catch (error) {
      processor.abort()
      this.failure = error as Error
      throw error
    } finally {
      this.ops = []
      this.used = 0
    }
  }

  /** Runs `then` once a buffer is free to fill. */
  private async later(then: () => Promise<void> | undefined): Promise<void> {
    while (!this.takeFree()) {
      // eslint-disable-next-line no-await-in-loop -- woken once per returned batch
      await this.returned()
      this.check()
    }

    await then()
  }

  /** Whether sending the ops needs a buffer back first: not for ops alone to a shared worker (they go without one). */
  private mustWait(): boolean {
    if (this.shared && this.used === 0) return false
    return this.batch === NO_BATCH && !this.takeFree()
  }

  private onReply(reply: Reply): void {
    this.sent--
    if ('error' in reply) this.failure ??= rebuild(reply.error)
    else this.settle(reply.done)
    if (reply.buffer) this.free.push(Buffer.from(reply.buffer))
    this.wakeUp()
  }

  private async returned(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.wake = resolve
    })
  }

  /**
   * Hands the batch to the worker (started on the first one) and takes a free buffer, or a new one
   * while fewer than IN_FLIGHT exist. A batch of operations only (REFs to a shared worker) goes
   * without a buffer, and the one being filled stays.
   */
  private send(): undefined {
    if (!this.worker) this.startWorker()
    this.sent++
    if (this.used === 0 && this.shared) {
      this.worker!.postMessage({buffer: null, kind: 'batch', length: 0, ops: this.ops})
      this.ops = []
      return undefined
    }

    const {batch} = this
    const message = {buffer: batch.buffer, kind: 'batch', length: this.used, ops: this.ops}
    this.worker!.postMessage(message, [batch.buffer as ArrayBuffer])
    this.ops = []
    this.used = 0
    this.batch = NO_BATCH
    if (!this.takeFree() && this.made < IN_FLIGHT) {
      this.made++
      this.batch = Buffer.allocUnsafeSlow(this.batchBytes)
    }

    return undefined
  }

  private settle(done: Array<[number, string]>): void {
    for (const [id, sha256] of done) {
      this.files.get(id)!.sha256 = sha256
      this.files.delete(id)
    }
  }

  private startWorker(): void {
    const own = !this.shared
    const worker = this.shared?.start() ?? new Worker(WORKER_SOURCE, {eval: true})
    if (own) live++
    this.worker = worker
    this.workerExit = new Promise<void>((resolve) => {
      worker.once('exit', (code) => {
        if (own) live--
        if (!this.closed) this.failure ??= new Error(`a file worker exited (code ${code}) before the end`)
        resolve()
        this.wakeUp()
      })
    })
    // A shared worker answers the decompressor too: its frames are not ours.
    worker.on('message', (reply: Reply | {kind: 'frame'}) => {
      if (reply.kind === undefined || reply.kind === 'batch') this.onReply(reply)
    })
    worker.on('error', (error) => {
      this.failure ??= new Error(`a file worker failed: ${error.message}`)
    })
  }

  /** Takes a free buffer as the batch to fill, if the batch has none and one is back. */
  private takeFree(): boolean {
    if (this.batch !== NO_BATCH) return true
    const buffer = this.free.pop()
    if (buffer) this.batch = buffer
    return buffer !== undefined
  }

  private wakeUp(): void {
    const {wake} = this
    this.wake = undefined
    wake?.()
  }
}
