/**
 * The last step of extracting an online backup: its files arrive as MO's BACKUP folder had them
 * (`tae/<object>`, `tae/ckp/…`, `hakeeper/hk_data`, `mo_meta`, …) and are moved, by rename within
 * the staging area, into the mo-data layout `mo_br restore` produces (src/lib/mo/layout.ts):
 * `shared/…` and `local/hk_data`. The backup's own metadata (tae_list, tae_sum, mo_meta, configs,
 * sidecars) is not part of mo-data and stays behind, to be removed with the raw folder.
 *
 * Guarantees: only files the manifest lists are moved, each to the one place restorePath names
 * (which refuses any path that could escape); two files mapped to one place fail the restore
 * (integrity) instead of one silently replacing the other; renames keep each file's verified
 * bytes, mode, mtime and owner; the directories it makes (mo-data itself, shared/, local/, …)
 * get the owner and group of the restored BACKUP folder's root, so a MatrixOne that runs as its
 * own user can write into them. Not: a check of MO's own consistency beyond what BACKUP's
 * sidecars and our manifest already proved.
 */
import {chown, mkdir, rename, stat} from 'node:fs/promises'
import {dirname, join} from 'node:path'

import type {Manifest} from '../archive/types.js'

import {integrityError, throwIfAborted} from '../errors.js'
import {restorePath} from '../mo/layout.js'

export interface LayoutResult {
  /** files moved into mo-data's layout */
  moved: number
  /** the backup's metadata files, not restored (as mo_br restore leaves them out) */
  skipped: number
}

/** Moves the manifest's files from `raw` (a BACKUP folder's layout) into `dest` (mo-data's layout). */
export async function layOutOnline(
  raw: string,
  dest: string,
  manifest: Manifest,
  signal?: AbortSignal,
): Promise<LayoutResult> {
  const targets = new Map<string, string>()
  let skipped = 0
  for (const entry of manifest.entries) {
    if (entry.type !== 'file') continue
    const to = restorePath(entry.path)
    if (to === null) {
      skipped++
      continue
    }

    const other = targets.get(to)
    if (other !== undefined) {
      throw integrityError(
        `online backup holds both ${other} and ${entry.path}, which both restore to ${to}`,
        'this backup cannot be laid out as mo_br restore does; report it with the backup id',
      )
    }

    targets.set(to, entry.path)
  }

  // The directories of the layout, parents first, owned as the folder MO's BACKUP wrote was.
  const {gid, uid} = await stat(raw)
  const asRoot = process.geteuid?.() === 0
  const makeDir = async (path: string) => {
    await mkdir(path, {mode: 0o755})
    if (asRoot) await chown(path, uid, gid)
  }

  await makeDir(dest)
  const dirs = new Set<string>()
  for (const to of targets.keys()) {
    for (let d = dirname(to); d !== '.'; d = dirname(d)) dirs.add(d)
  }

  for (const dir of [...dirs].sort((a, b) => a.split('/').length - b.split('/').length)) {
    throwIfAborted(signal)
    // eslint-disable-next-line no-await-in-loop -- directories before the directories and files they hold
    await makeDir(join(dest, dir))
  }

  for (const [to, from] of targets) {
    throwIfAborted(signal)
    // eslint-disable-next-line no-await-in-loop -- renames in one directory tree: cheap, in order
    await rename(join(raw, from), join(dest, to))
  }

  return {moved: targets.size, skipped}
}
