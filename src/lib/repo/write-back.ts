/**
 * A stream onto a file that is being written to be published, which has the kernel write it to
 * disk as it goes. FsBackend.save fsyncs the file before renaming it into place, and that fsync
 * waits for every page still dirty: for the 0.5 GB archive of the bench set, 0.5-0.9 s at the end
 * of a backup with nothing else left to do. Here, each time another WRITE_BACK_BYTES have been
 * written, an fdatasync of what is there so far starts in the background: one at a time, and the
 * writes never wait for it. The disk then works while the archive is still being compressed, and
 * the fsync at publish finds only the last stretch dirty.
 *
 * Guarantees: the chunks are written in order and whole (a write that stops short is continued,
 * and the write after it fails with the reason, ENOSPC for a full disk); a background fdatasync
 * that fails fails the stream, at its end at the latest: it has taken the file's one error report,
 * and the fsync after it on the same handle would return 0. Not done here: the fsync at the end and closing the handle, which are the caller's (a close
 * waits for a sync still running).
 */
import type {FileHandle} from 'node:fs/promises'

import {Writable} from 'node:stream'

/** How much is written between two background fdatasyncs. */
export const WRITE_BACK_BYTES = 32 * 1024 * 1024

/** What the stream needs of an open file (a FileHandle; tests wrap one to count or fail its calls). */
export type WriteBackFile = Pick<FileHandle, 'datasync' | 'writev'>

export function writeBackStream(handle: WriteBackFile, every = WRITE_BACK_BYTES): Writable {
  let unsynced = 0
  let syncing: Promise<void> | undefined
  let failure: Error | undefined

  const startSync = (): void => {
    unsynced = 0
    syncing = handle.datasync().then(
      () => {
        syncing = undefined
      },
      (error: Error) => {
        failure ??= error
        syncing = undefined
      },
    )
  }

  const write = async (buffers: Buffer[]): Promise<void> => {
    const size = buffers.reduce((sum, buffer) => sum + buffer.length, 0)
    // A write that stops short (the disk filled up after part of it) is continued from where it
    // stopped: the next write says why (ENOSPC); one that writes nothing at all is an error here.
    // An empty chunk is nothing to write (writev would say 0 bytes written).
    let rest = buffers.filter((buffer) => buffer.length > 0)
    while (rest.length > 0) {
      // eslint-disable-next-line no-await-in-loop -- in order: each write continues the last
      const {bytesWritten} = await handle.writev(rest)
      if (bytesWritten === 0) throw new Error(`short write: nothing of ${size} bytes written`)
      rest = remainder(rest, bytesWritten)
    }

    if (failure) throw failure
    unsynced += size
    // A sync still running covers less than asked; the next chunk past the mark starts another.
    if (unsynced >= every && !syncing) startSync()
  }

  return new Writable({
    final(callback) {
      Promise.resolve(syncing).then(() => callback(failure), callback)
    },
    highWaterMark: 1024 * 1024,
    writev(chunks, callback) {
      write(chunks.map(({chunk}) => chunk as Buffer)).then(() => callback(), callback)
    },
  })
}

/** What is left of `buffers` once their first `count` bytes are written. */
function remainder(buffers: Buffer[], count: number): Buffer[] {
  let skip = count
  let i = 0
  while (i < buffers.length && skip >= buffers[i].length) skip -= buffers[i++].length
  return i < buffers.length ? [buffers[i].subarray(skip), ...buffers.slice(i + 1)] : []
}
