/**
 * The tar entries of an archive, and nothing else: a POSIX (pax) tar stream of `data/` for the
 * data directory itself, `data/<path>` for every dir, file and symlink, `append/<path>` for the
 * bytes appended to a file since an earlier backup held it, and `MANIFEST.json` last.
 * Every entry carries its mode, mtime, uid, gid and the names of its user and group, in the ustar
 * fields, with pax records where they are too small (as GNU tar writes them, and `tar
 * --same-owner` reads them back).
 *
 * Guarantees: entries go out one at a time, in the order they are added; a file's body is taken
 * from the chunks given as they come (never held whole), with backpressure, and a source that
 * fails destroys the tar stream with that same error, so a consumer that only watches the stream
 * learns why. tar-stream itself refuses a body whose size is not the header's. It does not read
 * files, hash them or decide what goes in: write.ts does, from walk.ts's entries.
 */
import {type Readable} from 'node:stream'
import tar from 'tar-stream'

import type {Owner} from './types.js'

export const MANIFEST_ENTRY = 'MANIFEST.json'
export const DATA_PREFIX = 'data/'
/**
 * The bytes appended to `data/<path>` since an earlier backup of the chain held it (manifest
 * `parts`): by hand, extract the chain's archives oldest first and, after each one, `cat
 * append/<path> >> data/<path>` (README, "The repository").
 */
export const APPEND_PREFIX = 'append/'

/** ustar's uid and gid fields hold 6 octal digits in tar-stream, its names 32 bytes. */
const USTAR_MAX_ID = 262_143 // 0o777777
const USTAR_MAX_NAME = 32

/** What every entry's header says besides its name and type. */
export interface EntryMeta {
  mode?: number
  mtimeMs: number
  owner?: Owner
}

type Header = Parameters<tar.Pack['entry']>[0]
type Sink = ReturnType<tar.Pack['entry']>

/** A tar stream written entry by entry. `stream` is the tar; end it with `finalize`, or `destroy` it. */
export class TarPacker {
  private readonly pack = tar.pack()

  /** The tar bytes (tar-stream is built on streamx, which Node's pipeline drives like its own streams). */
  get stream(): Readable {
    return this.pack as unknown as Readable
  }

  /** The bytes appended to the file at `path` since an earlier backup held it: `append/<path>`, as `file` takes them. */
  appended(
    path: string,
    size: number,
    meta: EntryMeta,
    chunks: AsyncIterable<Buffer> | Iterable<Buffer>,
  ): Promise<void> {
    return this.body({...headerOf(path, meta, APPEND_PREFIX), size, type: 'file'}, chunks)
  }

  destroy(error: Error): void {
    this.pack.destroy(error)
  }

  /** A directory: `path` '' is the data directory itself (`data/`). */
  dir(path: string, meta: EntryMeta): Promise<void> {
    return add(this.pack, {...headerOf(path, meta), type: 'directory'})
  }

  /**
   * A regular file of `size` bytes, its body from `chunks` (which must add up to `size`). An error
   * from `chunks` or from the tar is thrown after destroying the entry with it.
   */
  file(path: string, size: number, meta: EntryMeta, chunks: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<void> {
    return this.body({...headerOf(path, meta), size, type: 'file'}, chunks)
  }

  /** Ends the tar: nothing can be added after. */
  finalize(): void {
    this.pack.finalize()
  }

  /** MANIFEST.json, the last entry. */
  manifest(bytes: Buffer): Promise<void> {
    return add(this.pack, {mode: 0o600, mtime: new Date(), name: MANIFEST_ENTRY, type: 'file'}, bytes)
  }

  symlink(path: string, target: string, meta: EntryMeta): Promise<void> {
    return add(this.pack, {...headerOf(path, meta), linkname: target, type: 'symlink'})
  }

  private async body(header: Header, chunks: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<void> {
    let sink!: Sink
    const written = new Promise<void>((resolve, reject) => {
      sink = this.pack.entry(header, (error) => (error ? reject(error) : resolve()))
    })
    // Its failure is reported by whichever await below sees it first; the sink's 'error' event
    // repeats the error we destroy it with.
    written.catch(() => {})
    sink.on('error', () => {})
    try {
      // A source that streams from elsewhere (an S3 staging prefix) gives an async iterable; a
      // local file stays a plain loop, with no await per chunk.
      if (Symbol.asyncIterator in chunks) {
        for await (const chunk of chunks) if (!sink.write(chunk)) await drained(sink)
      } else {
        for (const chunk of chunks) {
          // eslint-disable-next-line no-await-in-loop -- backpressure: wait until the tar takes more
          if (!sink.write(chunk)) await drained(sink)
        }
      }
    } catch (error) {
      // The tar stream ends with the same error, for a consumer that only watches it.
      sink.destroy(error as Error)
      throw error
    }

    sink.end(Buffer.alloc(0))
    await written
  }
}

function headerOf(path: string, meta: EntryMeta, prefix = DATA_PREFIX): Header {
  return {
    ...(meta.mode === undefined ? {} : {mode: meta.mode}),
    mtime: new Date(meta.mtimeMs),
    name: prefix + path,
    ...ownerHeader(meta.owner),
  }
}

const fits = (name: string) => Buffer.byteLength(name) <= USTAR_MAX_NAME

/**
 * The owner in tar header fields, as `tar --same-owner` reads it back: the ustar fields, and pax
 * records for what they cannot hold (large ids, long names), as GNU tar writes them.
 */
function ownerHeader(owner: Owner | undefined): Partial<Header> {
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

function add(pack: tar.Pack, header: Header, body?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const callback = (error?: Error | null) => (error ? reject(error) : resolve())
    if (body) pack.entry(header, body, callback)
    else pack.entry(header, callback).end(Buffer.alloc(0))
  })
}

function drained(sink: Sink): Promise<void> {
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
