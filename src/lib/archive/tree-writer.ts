/**
 * The tree on disk: files, dirs and symlinks written under a root, and their owners, modes and
 * times.
 *
 * Guarantees: nothing is created outside `root`: every parent directory is checked once (lstat: a
 * real directory, not a symlink planted in a non-empty root) before anything is created in it,
 * and symlinks are created exclusively, never through or over what is there; files are created
 * exclusively by file-sink.ts (or, for a part of a file a newer archive of the chain made, opened
 * without following a symlink), at the paths `prepareFile` checked (runs of 64 KiB of zeros left as
 * holes, so a sparse file stays sparse). Metadata is applied in one
 * pass over a manifest, at the end, when every byte is in place: owners (as an OwnerPlan says:
 * see owners.ts), modes (without setuid, setgid and sticky unless kept) and mtimes, dirs last and
 * deepest first. It does not check names or contents (read.ts does, before anything reaches
 * it), does not fsync, and does not clean up after a failure (the caller owns the directory).
 */
import {chmodSync, chownSync, lchownSync, lutimesSync, utimesSync} from 'node:fs'
import {lstat, mkdir, symlink} from 'node:fs/promises'
import {join, posix} from 'node:path'

import type {Breather} from './breather.js'
import type {Ids, OwnerPlan} from './owners.js'
import type {DirEntry, Manifest, Owner} from './types.js'

import {integrityError} from '../errors.js'
import {ROOT_PATH} from './walk.js'

/**
 * Modes are taken modulo this by default: permission bits only; setuid, setgid and sticky only
 * with keepSpecialModes (modulo SPECIAL_MODE_BITS). A modulo of a power of two is a mask.
 */
const PLAIN_MODE_BITS = 0o1000
const SPECIAL_MODE_BITS = 0o1_0000

/**
 * Writes entries under `root`, never outside it: every parent directory is checked once (lstat:
 * a real directory, not a symlink planted in a non-empty dest) before anything is created in it,
 * and symlinks are created exclusively (files: file-sink.ts, where prepareFile says).
 */
export class TreeWriter {
  private readonly checked = new Set<string>()

  constructor(private readonly root: string) {}

  async dir(path: string): Promise<void> {
    await this.ensureDir(path === ROOT_PATH ? '.' : path)
  }

  /**
   * Where a new file goes: its absolute path, once its parent directories are checked (and made).
   * The file itself is created exclusively (or written into, for a part of a file a newer archive
   * of the chain made), written and hashed by file-sink.ts.
   */
  async prepareFile(path: string): Promise<string> {
    await this.ensureDir(posix.dirname(path))
    return this.abs(path)
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

export interface TreeMetadataOptions {
  /** lets the event loop (and SIGINT) in during a million entries */
  breather: Breather
  /** keep setuid, setgid and sticky bits from the manifest (a MatrixOne data dir has none) */
  keepSpecialModes?: boolean
  /** whose the entries become (owners.ts ownerPlan, resolved as the pass meets them); by default they stay the restoring user's */
  owners?: OwnerPlan
}

/**
 * Owners (as `owners` plans them), modes and mtimes of every entry of `manifest` under `root`, in
 * one pass: the owner plan looks each recorded name up the first time the pass meets it, and says
 * what it could not give back once the pass is over. The data directory's own (`root` of the
 * manifest, path '') goes to `root` itself.
 * Dirs last and deepest first, since writing into a dir changes its mtime. chown before chmod:
 * chown clears setuid and setgid bits. Symlinks get lchown and lutimes (their mode means nothing
 * on Linux). Synchronous calls (thousands of tiny syscalls, each a thread-pool round trip
 * otherwise), with a pause for the event loop every ~50 ms.
 */
export async function applyTreeMetadata(
  root: string,
  manifest: Pick<Manifest, 'entries' | 'root'>,
  options: TreeMetadataOptions,
): Promise<void> {
  const {breather, owners} = options
  const modeBits = options.keepSpecialModes ? SPECIAL_MODE_BITS : PLAIN_MODE_BITS
  const abs = (path: string) => (path === ROOT_PATH ? root : join(root, ...path.split('/')))
  /** The ids for `owner`: a plain value, but for the first entry of each owner (one name lookup). */
  const idsOf = (owner?: Owner) => owners?.ids(owner)
  const chown = (path: string, ids: Ids | undefined, link = false) => {
    if (!ids) return
    if (link) lchownSync(abs(path), ids.uid, ids.gid)
    else chownSync(abs(path), ids.uid, ids.gid)
  }

  // The data directory's owner first, as the backup recorded it first.
  const top = manifest.root
  let topIds = idsOf(top?.owner)
  if (topIds instanceof Promise) topIds = await topIds
  const dirs: Array<{depth: number; entry: Omit<DirEntry, 'type'>}> = []
  for (const e of manifest.entries) {
    // eslint-disable-next-line no-await-in-loop -- rarely: lets SIGINT in
    await breather.breathe()
    let ids = idsOf(e.owner)
    // eslint-disable-next-line no-await-in-loop -- once per distinct owner
    if (ids instanceof Promise) ids = await ids
    // Seconds as a number keep the sub-millisecond part that a Date would drop.
    const time = e.mtimeMs / 1000
    if (e.type === 'dir') {
      dirs.push({depth: e.path.split('/').length, entry: e})
    } else if (e.type === 'file') {
      chown(e.path, ids)
      chmodSync(abs(e.path), e.mode % modeBits)
      utimesSync(abs(e.path), time, time)
    } else {
      chown(e.path, ids, true)
      lutimesSync(abs(e.path), time, time)
    }
  }

  dirs.sort((a, b) => b.depth - a.depth)
  // The data directory itself, last of all (a manifest without `root` still gets --chown).
  if (top) dirs.push({depth: 0, entry: {...top, path: ROOT_PATH}})
  else chown(ROOT_PATH, topIds)

  for (const {entry: d} of dirs) {
    // eslint-disable-next-line no-await-in-loop -- rarely: lets SIGINT in
    await breather.breathe()
    let ids = idsOf(d.owner)
    // eslint-disable-next-line no-await-in-loop -- resolved in the pass above: a plain value
    if (ids instanceof Promise) ids = await ids
    chown(d.path, ids)
    chmodSync(abs(d.path), d.mode % modeBits)
    utimesSync(abs(d.path), d.mtimeMs / 1000, d.mtimeMs / 1000)
  }

  await owners?.finish()
}
