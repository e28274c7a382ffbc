/**
 * A staged tree made durable before it is swapped in: one syncfs(2) of the filesystem that holds
 * it, through `sync -f DIR` (Linux's coreutils; Node has no syncfs binding), else, where that is
 * missing or fails (busybox) or is not a syncfs (another OS), an fsync of every file and directory.
 *
 * Why one syncfs: on the 1 GiB reference set, just restored (0.6-1.1 GB dirty), `sync -f` took
 * 0.6-1.1 s, an fsync of each of its 527 files 4.3-8.2 s (a journal commit each).
 *
 * TreeWriteBack starts that flush early, while the tree is still being written: one `sync -f` in
 * the background each TREE_WRITE_BACK_BYTES of the extraction's progress, one at a time, so the disk
 * works while the archive is still being read and the syncTree at the end finds little dirty (on
 * a disk that writes 0.5 GB/s, the end's syncfs of the 1 GiB set took 2.1 s alone). A background
 * flush that fails may have taken the error report (syncfs reports a writeback error once): the
 * syncTree after it then fsyncs file by file, whose own reports it has not taken.
 *
 * Guarantees: when `syncTree` resolves, the files under `root` (contents, sizes) and the
 * directories naming them are on stable storage as far as the filesystem's syncfs or fsync
 * promises (syncfs reports writeback errors from Linux 5.8); a failure of both ways is thrown.
 * The child gets no secret (childEnv) and is killed on abort. Not: the renames of the swap (the
 * caller's), or other filesystems; syncfs also flushes what others wrote on the same filesystem.
 * A TreeWriteBack promises nothing of its own: only the syncTree after it does.
 */
import {execFile} from 'node:child_process'
import {readdir} from 'node:fs/promises'
import {join} from 'node:path'
import {promisify} from 'node:util'

import {childEnv} from '../redact.js'
import {fsyncPath} from '../repo/fs.js'

const run = promisify(execFile)

/** One syncfs(2) of the filesystem that holds `root`; the child gets no secret. */
const syncfs = (root: string, signal?: AbortSignal) => run('sync', ['-f', root], {env: childEnv(), signal})

/** How much extraction progress there is between two background flushes of a tree. */
export const TREE_WRITE_BACK_BYTES = 64 * 1024 * 1024

/** Only Linux's `sync -f` is a syncfs that waits: BSD's and macOS's sync ignores -f and returns at once. */
const hasSyncfs = () => process.platform === 'linux'

/** Background flushes of a tree being written (see the header); `written` is told the progress. */
export class TreeWriteBack {
  /** why a background flush failed (`sync`'s own words): syncTree must then go file by file */
  failure: string | undefined
  private readonly abort = new AbortController()
  private readonly every: number
  private flushedAt = 0
  private running: Promise<void> | undefined

  constructor(
    private readonly root: string,
    options: {every?: number; signal?: AbortSignal} = {},
  ) {
    this.every = options.every ?? TREE_WRITE_BACK_BYTES
    // Ctrl-C kills a flush as a failure does.
    options.signal?.addEventListener('abort', () => this.abort.abort(), {once: true})
  }

  /**
   * Waits for a flush still running, or kills it. A `sync` already inside syncfs(2) only dies
   * when the call returns (the kernel does not interrupt it): a failed restore may still wait for
   * that one flush, never for another.
   */
  async settle(kill = false): Promise<void> {
    if (kill) this.abort.abort()
    await this.running
  }

  /**
   * The extraction has got to `bytes` (its progress count: bytes read and checked, superseded
   * files of a chain too, told at each progress tick, so the marks are approximate).
   */
  written(bytes: number): void {
    if (!hasSyncfs() || this.failure || this.running || bytes - this.flushedAt < this.every) return
    this.flushedAt = bytes
    this.running = syncfs(this.root, this.abort.signal).then(
      () => {
        this.running = undefined
      },
      (error: Error & {stderr?: string}) => {
        this.failure = error.stderr?.trim().split('\n')[0] || error.message
        this.running = undefined
      },
    )
  }
}

/**
 * Flushes the tree under `root` to disk; says how. `perFile`: skip the syncfs (a TreeWriteBack's
 * flush failed, and may have taken the error report a syncfs would give).
 */
export async function syncTree(
  root: string,
  signal?: AbortSignal,
  options: {perFile?: boolean} = {},
): Promise<'fsync' | 'syncfs'> {
  if (!options.perFile && hasSyncfs())
    try {
      await syncfs(root, signal)
      return 'syncfs'
    } catch {
      // No `sync -f` here (or it failed): every file, one by one.
      signal?.throwIfAborted()
    }

  await fsyncTree(root, signal)
  return 'fsync'
}

/** fsync of every file and directory under `root`, depth first, each directory after its entries. */
async function fsyncTree(dir: string, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted()
  for (const entry of await readdir(dir, {withFileTypes: true})) {
    const path = join(dir, entry.name)
    // eslint-disable-next-line no-await-in-loop -- one at a time: each fsync waits for the disk anyway
    if (entry.isDirectory()) await fsyncTree(path, signal)
    // eslint-disable-next-line no-await-in-loop
    else if (entry.isFile()) await fsyncPath(path)
  }

  await fsyncPath(dir)
}
