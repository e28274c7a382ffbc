/**
 * An online backup of a running MatrixOne (DESIGN.md "Two ways to take a backup"): MO's own
 * `BACKUP` statement writes its folder beside the data directory (src/lib/mo), its sidecars and
 * tae_list are checked, and the folder is packed like a data directory, then removed.
 *
 * An incremental (`TYPE 'incremental' TIMESTAMP '<base's backup ts>'`) folder holds only the
 * new objects; its tae_list names every file a restore needs, those left in earlier backups with
 * needCopy=false. planOnlineIncremental turns that into our chain's terms: the folder's files go
 * in the archive, the needCopy=false objects are listed as they are in the base's manifest, and
 * whatever else the base held (superseded ckp/ and gc/ metadata, GC'd objects) is deleted.
 *
 * Guarantees: an object MO leaves to the base that the base's chain does not hold fails the
 * backup (integrity) before anything is published. Not: a check that the base is the backup MO's
 * TIMESTAMP refers to beyond its backup ts (the base must be an online backup of the same source).
 */
import {basename, dirname, join} from 'node:path'

import type {FileEntry, Manifest} from '../archive/types.js'
import type {ScannedEntry} from '../archive/walk.js'
import type {TaeListEntry} from '../mo/meta.js'
import type {IncrementalPlan} from './plan.js'

import {integrityError} from '../errors.js'

/** Where MO's BACKUP writes for backup `id`: beside the data dir (MO must be able to write there). */
export function onlineFolderFor(dataDir: string, id: string, parent?: string): string {
  return join(parent ?? dirname(dataDir), `.${basename(dataDir)}.online-${id}`)
}

export function planOnlineIncremental(
  scanned: ScannedEntry[],
  taeList: TaeListEntry[],
  base: Manifest,
): IncrementalPlan {
  const baseFiles = new Map<string, FileEntry>()
  for (const e of base.entries) if (e.type === 'file') baseFiles.set(e.path, e)
  const present = new Set(scanned.map((e) => e.path))
  const unchanged: FileEntry[] = []
  for (const listed of taeList) {
    const path = `tae/${listed.path}`
    if (listed.needCopy || present.has(path)) continue
    const before = baseFiles.get(path)
    if (!before) {
      throw integrityError(
        `MO's incremental leaves ${path} in an earlier backup, but base ${base.backupId}'s chain does not hold it`,
        'take a full online backup (--mode online --type full), then incrementals on it',
      )
    }

    unchanged.push(before)
  }

  const kept = new Set([...present, ...unchanged.map((f) => f.path)])
  const files = scanned.filter((e) => e.type === 'file')
  return {
    changedBytes: files.reduce((n, f) => n + f.size, 0),
    deleted: [...baseFiles.keys()].filter((path) => !kept.has(path)),
    reread: 0,
    toPack: scanned,
    unchanged,
  }
}
