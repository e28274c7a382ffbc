/**
 * Where each file of a MatrixOne `BACKUP` folder goes in a restored `mo-data/`: the layout
 * `mo_br restore` produces.
 *
 * What MO does (matrixone pkg/backup/backup.go `backupTae`, `backupHakeeper`; tae.go
 * `execBackup`, `CopyCheckpointDir`, `CopyGCDir`; pkg/logservice/config.go
 * `defaultRestoreFilePath = "hk_data"`, service_bootstrap.go `getBackupData`; the mo_br docs,
 * matrixorigin.io docs/MatrixOne/Maintain/backup-restore/mobr-backup-restore/*.md):
 * - `tae/<object>`, `tae/ckp/…`, `tae/gc/…` are copies of the SHARED fileservice (mo-data/shared
 *   on a standalone MO) made through the same fileservice type; `mo_br restore` copies them back
 *   to `mo-data/shared/` ("TaePath ./mo-data/shared", "018f…_00000 => mo-data/shared/018f…_00000").
 * - `hakeeper/hk_data` is the HAKeeper's ID watermarks; on the first start of a fresh log service
 *   the HAKeeper reads `hk_data` from the LOCAL fileservice (mo-data/local) when it exists and
 *   bootstraps from it (then writes local/RESTORED). So it goes to `mo-data/local/hk_data`.
 * - `tae/tae_list`, `tae/tae_sum`, `mo_meta`, mo_br's `backup_meta` and the `.sha256` sidecars
 *   describe the backup; `config/<file>_<uuid>` are copies of the launch configs, kept for
 *   reference. None of them is part of mo-data.
 * A restore therefore produces a mo-data/ holding only shared/ and local/hk_data: no
 * logservice-data/ (the HAKeeper must bootstrap afresh to read hk_data; mo_br's documented
 * procedure deletes mo-data before restoring) and no caches. Restore into an empty mo-data.
 * Where the sources are silent (files of a kind not listed here), we restore nothing and say so
 * with kind 'unknown': an operator would rather be told than find a stray file in mo-data.
 *
 * An incremental BACKUP folder holds only what changed, yet its tae/tae_list lists every file
 * the restored mo-data needs: the objects it copied (needCopy=true) and those it left in an
 * earlier backup of the chain (needCopy=false), plus its own ckp/ and gc/ (tae.go
 * `parallelCopyData` lists both kinds). So an incremental is restored from its own tae_list
 * (onlineRestoreSet), not from the union of the chain's folders, whose older ckp/ and gc/
 * metadata the newer backup has superseded.
 *
 * The target MO may read another layout (v4.2's launch configs put SHARED in mo-data/shared2 as
 * DISK-V2, and the HAKeeper's restore file may be elsewhere): a TargetLayout, built from the
 * target's launch configs (config.ts), says where SHARED and hk_data are under the data dir and
 * whether each is CRC-framed; MO_BR_LAYOUT is mo_br's, MO's defaults without configs.
 *
 * Guarantees: pure functions; a path that could escape (absolute, '..', empty segment, NUL,
 * backslash) is refused with an `integrity` BrError, never mapped.
 * Not: any file I/O.
 */
import {isSafePath} from '../archive/paths.js'
import {integrityError} from '../errors.js'
import {type TaeListEntry} from './meta.js'

export type OnlineFileKind = 'backup-metadata' | 'config' | 'data' | 'hakeeper' | 'sidecar' | 'tae-metadata' | 'unknown'

export interface OnlineLayoutRule {
  kind: OnlineFileKind
  /** what it is and who writes it */
  note: string
  /** the path in the BACKUP folder (a `*` stands for any name, `**` for any sub-path) */
  pattern: string
  /** where `mo_br restore` puts it, relative to mo-data/; null: not restored */
  restoredTo: null | string
}

/** The layout of a BACKUP folder and its restore, for docs and `--help`. */
export const ONLINE_LAYOUT: readonly OnlineLayoutRule[] = [
  {
    kind: 'data',
    note: 'objects, checkpoint and GC metadata copied from the SHARED fileservice',
    pattern: 'tae/**',
    restoredTo: 'shared/**',
  },
  {
    kind: 'tae-metadata',
    note: 'the files of this backup, their sizes and SHA-256',
    pattern: 'tae/tae_list',
    restoredTo: null,
  },
  {kind: 'tae-metadata', note: 'backup time, total size, backup ts, type', pattern: 'tae/tae_sum', restoredTo: null},
  {
    kind: 'hakeeper',
    note: 'HAKeeper ID watermarks, read by a fresh log service at bootstrap',
    pattern: 'hakeeper/hk_data',
    restoredTo: 'local/hk_data',
  },
  {
    kind: 'backup-metadata',
    note: 'backup format version, build info, launch configs',
    pattern: 'mo_meta',
    restoredTo: null,
  },
  {
    kind: 'backup-metadata',
    note: "mo_br's own record (absent from a bare BACKUP)",
    pattern: 'backup_meta',
    restoredTo: null,
  },
  {kind: 'config', note: 'copies of the launch configs, for reference', pattern: 'config/*', restoredTo: null},
  {
    kind: 'sidecar',
    note: 'raw 32-byte SHA-256 of the content of the file beside it',
    pattern: '**.sha256',
    restoredTo: null,
  },
]

/** Where a restore puts SHARED's files and hk_data, relative to mo-data/, and in which form. */
export interface TargetLayout {
  /** where the HAKeeper reads hk_data, relative to mo-data/; null: it restores nothing, left out */
  hakeeper: null | string
  /** hk_data must be CRC-framed (read through a DISK file service) */
  hakeeperFramed: boolean
  /** the SHARED file service's directory, relative to mo-data/ ('' for mo-data itself) */
  shared: string
  /** SHARED's backend is DISK (CRC-framed), not DISK-V2 */
  sharedFramed: boolean
}

/** mo_br restore's layout: MO's defaults when no file service is configured (DISK, shared/, local/). */
export const MO_BR_LAYOUT: TargetLayout = {
  hakeeper: 'local/hk_data',
  hakeeperFramed: true,
  shared: 'shared',
  sharedFramed: true,
}

const TAE_METADATA = new Set(['tae/tae_list', 'tae/tae_sum'])
const BACKUP_METADATA = new Set(['backup_meta', 'mo_meta'])

/** What a file of a BACKUP folder is (path relative to the folder, '/'-separated). */
export function classifyOnlineFile(relPath: string): OnlineFileKind {
  if (!isSafePath(relPath, {refuseBackslash: true})) {
    throw integrityError(
      `'${relPath}' is not a path inside a backup folder`,
      'the backup folder or archive is damaged or was tampered with: use another backup',
    )
  }

  if (relPath.endsWith('.sha256')) return 'sidecar'
  if (TAE_METADATA.has(relPath)) return 'tae-metadata'
  if (relPath.startsWith('tae/')) return 'data'
  if (relPath === 'hakeeper/hk_data') return 'hakeeper'
  if (BACKUP_METADATA.has(relPath)) return 'backup-metadata'
  if (relPath.startsWith('config/')) return 'config'
  return 'unknown'
}

/**
 * Where a restore puts a file of a BACKUP folder, relative to mo-data/, or null when it is not
 * restored; by default where `mo_br restore` puts it.
 */
export function restorePath(relPath: string, layout: TargetLayout = MO_BR_LAYOUT): null | string {
  switch (classifyOnlineFile(relPath)) {
    case 'data': {
      const rest = relPath.slice('tae/'.length)
      return layout.shared === '' ? rest : `${layout.shared}/${rest}`
    }

    case 'hakeeper': {
      return layout.hakeeper
    }

    default: {
      return null
    }
  }
}

export interface OnlineRestoreFile {
  /** true: the bytes are in this backup's folder; false: in an earlier backup of its chain */
  inThisBackup: boolean
  /** the path in a BACKUP folder */
  path: string
  /** where it goes, relative to mo-data/ */
  restoredTo: string
}

/**
 * Every file a restore of one online backup writes into mo-data/, from its tae_list: the data
 * files (copied by this backup or by an earlier one of the chain) and the HAKeeper watermarks.
 */
export function onlineRestoreSet(
  taeList: readonly TaeListEntry[],
  layout: TargetLayout = MO_BR_LAYOUT,
): OnlineRestoreFile[] {
  const files = taeList.map((entry) => {
    const path = `tae/${entry.path}`
    return {inThisBackup: entry.needCopy, path, restoredTo: restorePath(path, layout) ?? ''}
  })
  const notData = files.find((file) => !file.restoredTo)
  if (notData) {
    throw integrityError(
      `tae/tae_list lists ${notData.path}, which is not a data file`,
      'the backup folder or archive is damaged or was tampered with: use another backup',
    )
  }

  return layout.hakeeper === null
    ? files
    : [...files, {inThisBackup: true, path: 'hakeeper/hk_data', restoredTo: layout.hakeeper}]
}

/** The SHARED backend a BACKUP folder's tae/ and hakeeper/ were written through. */
export type BackupBackend = 'DISK' | 'DISK-V2'

const FRAMED_SIDECAR_SIZE = 36
const RAW_SIDECAR_SIZE = 32

/**
 * Which form an online backup's files have, from the size of the sidecars BACKUP wrote beside
 * hk_data and tae_list through the same file service: one 36-byte frame around the digest (DISK)
 * or the raw 32 bytes (DISK-V2). Works on a manifest, before anything is extracted.
 */
export function backupBackend(files: ReadonlyArray<{path: string; size: number}>): BackupBackend {
  const sizes = new Set(
    files.filter((f) => f.path === 'hakeeper/hk_data.sha256' || f.path === 'tae/tae_list.sha256').map((f) => f.size),
  )
  if (sizes.size === 1 && sizes.has(FRAMED_SIDECAR_SIZE)) return 'DISK'
  if (sizes.size === 1 && sizes.has(RAW_SIDECAR_SIZE)) return 'DISK-V2'
  throw integrityError(
    `the online backup's hakeeper/hk_data.sha256 and tae/tae_list.sha256 are ${sizes.size === 0 ? 'missing' : `of sizes ${[...sizes].join(', ')}`}: cannot tell whether its files are DISK-framed`,
    'the backup folder or archive is damaged or was tampered with: use another backup',
  )
}

export interface LayoutMapping {
  /** how the bytes change on the way: 'none', or which frames are added or stripped */
  conversion: string
  /** files of the BACKUP folder (`**`: any sub-path) */
  from: string
  /** where they go, relative to mo-data/; null: left out */
  to: null | string
}

/** What a restore of an online backup does with its files, for --dry-run and the restore's output. */
export function layoutMapping(layout: TargetLayout, backend: BackupBackend): LayoutMapping[] {
  const conversion = (targetFramed: boolean) => {
    const target: BackupBackend = targetFramed ? 'DISK' : 'DISK-V2'
    if (target === backend) return `none (${backend}, as the target reads it)`
    return backend === 'DISK'
      ? 'DISK -> DISK-V2: strip the CRC-32C frames, checking each, then the content SHA-256'
      : 'DISK-V2 -> DISK: add CRC-32C frames, checking the content SHA-256'
  }

  return [
    {
      conversion: conversion(layout.sharedFramed),
      from: 'tae/**',
      to: layout.shared === '' ? '**' : `${layout.shared}/**`,
    },
    {
      conversion: layout.hakeeper === null ? 'none' : conversion(layout.hakeeperFramed),
      from: 'hakeeper/hk_data',
      to: layout.hakeeper,
    },
    {conversion: 'none', from: 'mo_meta, config/*, tae/tae_list, tae/tae_sum, *.sha256', to: null},
  ]
}
