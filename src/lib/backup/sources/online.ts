/**
 * An online backup of a running MatrixOne (DESIGN.md "Where the files come from: sources"): MO's own
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
import {rm} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'

import type {FileEntry, Manifest} from '../../archive/types.js'
import type {ScannedEntry} from '../../archive/walk.js'
import type {TaeListEntry} from '../../mo/meta.js'
import type {SqlSettings} from '../../service/types.js'
import type {IncrementalPlan} from '../plan.js'
import type {BackupOptions, Packing} from '../types.js'
import type {Source} from './types.js'

import {scanDataDir} from '../../archive/walk.js'
import {integrityError} from '../../errors.js'
import {formatBytes, formatDuration} from '../../format.js'
import {runMoBackup} from '../../mo/backup-sql.js'
import {parseTaeList, TAE_LIST} from '../../mo/meta.js'
import {checkSidecars, readVerifiedFile} from '../../mo/sidecars.js'
import {baseOf, PACK_WHAT, planSummary} from './cold.js'
import {PLAN, SCAN} from './types.js'

const removeFolder = (folder: string) => rm(folder, {force: true, recursive: true})

/**
 * The online source: MO's BACKUP writes its folder, its checksums are checked, the folder is
 * scanned and planned; the pack reads the folder, and its release removes it. MO keeps running:
 * nothing is stopped, and the data dir is not locked (MO's own files are not read).
 */
export function onlineSource(options: BackupOptions, sql: SqlSettings): Source {
  return {
    afterPack: (script) => script,
    excluded: [],
    readsDataDir: false,
    take: (script) =>
      script
        .step("Run MO's BACKUP", async (input, trail, report, signal) => {
          const folder = onlineFolderFor(options.dataDir, input.id, options.onlineDir)
          trail.paths.push({flag: '--online-dir', path: folder, role: 'online backup folder'})
          trail.release = () => removeFolder(folder)
          report.output(`MO writes into ${folder}`)
          const mo = await runMoBackup(sql, {
            baseTs: input.base?.record.backupTs,
            dir: folder,
            parallelism: options.parallelism,
            signal,
            type: options.type,
          })
          report.output(
            `${mo.serverVersion}: backup ts ${mo.backupTs}, ${formatBytes(mo.size)} in ${formatDuration(mo.elapsedMs)}`,
          )
          return {folder, mo}
        })
        .step("Check MO's checksums", async ({folder}, _trail, report, signal) => {
          const checked = await checkSidecars(folder, {signal})
          report.output(
            `${checked.files} files, ${formatBytes(checked.bytes)}: ${checked.viaSidecar} by .sha256 sidecar, ${checked.viaTaeList} by tae_list`,
          )
        })
        .step(SCAN, async ({folder}, trail, report, signal) => {
          const entries = await scanDataDir(folder, {signal})
          const files = entries.filter((e) => e.type === 'file')
          const bytes = files.reduce((n, f) => n + f.size, 0)
          trail.needed = {bytes, what: PACK_WHAT}
          report.output(`${files.length} files, ${formatBytes(bytes)}`)
          const packing: Packing = {entries, plan: null, release: () => removeFolder(folder), root: folder}
          return {packing}
        })
        .stepIf(options.type === 'incremental', PLAN, async (input, trail, report, signal) => {
          const taeList = await readVerifiedFile(input.folder, TAE_LIST, signal)
          const plan = planOnlineIncremental(
            input.packing.entries,
            parseTaeList(taeList.toString('utf8')),
            baseOf(input).manifest,
          )
          trail.needed = {bytes: plan.changedBytes, what: PACK_WHAT}
          report.output(planSummary(plan, options))
          return {packing: {...input.packing, entries: plan.toPack, plan}}
        }),
  }
}

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
