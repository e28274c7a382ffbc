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
 * bytes, mode and mtime. Not: a check of MO's own consistency beyond what BACKUP's sidecars and
 * our manifest already proved.
 */
import {mkdir, rename} from 'node:fs/promises'
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

  await mkdir(dest, {mode: 0o755})
  const made = new Set<string>()
  for (const [to, from] of targets) {
    throwIfAborted(signal)
    const parent = dirname(to)
    if (!made.has(parent)) {
      // eslint-disable-next-line no-await-in-loop -- directories before the files they hold
      await mkdir(join(dest, parent), {mode: 0o755, recursive: true})
      made.add(parent)
    }

    // eslint-disable-next-line no-await-in-loop -- renames in one directory tree: cheap, in order
    await rename(join(raw, from), join(dest, to))
  }

  return {moved: targets.size, skipped}
}
