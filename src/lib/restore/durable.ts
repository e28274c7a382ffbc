/**
 * A staged tree made durable before it is swapped in: one syncfs(2) of the filesystem that holds
 * it, through `sync -f DIR` (coreutils; Node has no syncfs binding), else, where that is missing
 * or fails (another OS, busybox), an fsync of every file and directory under it.
 *
 * Why one syncfs: on the 1 GiB reference set, just restored (0.6-1.1 GB dirty), `sync -f` took
 * 0.6-1.1 s, an fsync of each of its 527 files 4.3-8.2 s (a journal commit each).
 *
 * Guarantees: when `syncTree` resolves, the files under `root` (contents, sizes) and the
 * directories naming them are on stable storage as far as the filesystem's syncfs or fsync
 * promises (syncfs reports writeback errors from Linux 5.8); a failure of both ways is thrown.
 * The child gets no secret (childEnv) and is killed on abort. Not: the renames of the swap (the
 * caller's), or other filesystems; syncfs also flushes what others wrote on the same filesystem.
 */
import {execFile} from 'node:child_process'
import {readdir} from 'node:fs/promises'
import {join} from 'node:path'
import {promisify} from 'node:util'

import {childEnv} from '../redact.js'
import {fsyncPath} from '../repo/fs.js'

const run = promisify(execFile)

/** Flushes the tree under `root` to disk; says how. */
export async function syncTree(root: string, signal?: AbortSignal): Promise<'fsync' | 'syncfs'> {
  try {
    await run('sync', ['-f', root], {env: childEnv(), signal})
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
