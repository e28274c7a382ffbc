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
import {readdir, rm} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'

import type {FileEntry, Manifest} from '../../archive/types.js'
import type {ScannedEntry} from '../../archive/walk.js'
import type {TaeListEntry} from '../../mo/meta.js'
import type {S3Backend} from '../../repo/s3.js'
import type {SqlSettings} from '../../service/types.js'
import type {IncrementalPlan} from '../plan.js'
import type {BackupOptions, Packing} from '../types.js'
import type {Source} from './types.js'

import {scanDataDir} from '../../archive/walk.js'
import {integrityError, usageError} from '../../errors.js'
import {formatBytes, formatDuration} from '../../format.js'
import {idTime} from '../../id.js'
import {type MoS3Target, runMoBackup} from '../../mo/backup-sql.js'
import {parseTaeList, TAE_LIST} from '../../mo/meta.js'
import {checkSidecars, readVerifiedFile, RERUN} from '../../mo/sidecars.js'
import {openStaged, type StagedFolder} from '../../mo/staged.js'
import {describeError} from '../../service/sql.js'
import {baseOf, PACK_WHAT, planSummary} from './cold.js'
import {PLAN, SCAN} from './types.js'

const removeFolder = (folder: string) => rm(folder, {force: true, recursive: true})

/**
 * The online source: MO's BACKUP writes its folder, its checksums are checked, the folder is
 * scanned and planned; the pack reads the folder, and its release removes it. MO keeps running:
 * nothing is stopped, and the data dir is not locked (MO's own files are not read).
 */
export function onlineSource(options: BackupOptions, sql: SqlSettings): Source {
  if (options.stage) return stagedSource(options, sql, options.stage)
  return {
    afterPack: (script) => script,
    excluded: [],
    readsDataDir: false,
    take: (script) =>
      script
        .step("Run MO's BACKUP", async (input, trail, report, signal) => {
          const folder = onlineFolderFor(options.dataDir, input.id, options.onlineDir)
          trail.paths.push({flag: '--online-dir', path: folder, role: 'online backup folder'})
          for (const line of await leftoverFolders(folder)) options.onWarning?.(line)
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
    grown: 0,
    reread: 0,
    toPack: scanned,
    unchanged,
  }
}

/**
 * The online source through an S3 staging prefix (`--stage s3://BUCKET/PREFIX`): MO's BACKUP …
 * S3OPTION writes into `<PREFIX>/online-<id>/`, which must be empty; its sidecars and tae_list
 * are checked from S3 (staged.ts), every object streams from S3 into the pack, checked against
 * its digest as it passes (a mismatch fails the pack: exit 3, nothing published), and the prefix
 * is deleted when the run ends, whatever happened; a failed delete is a warning naming it.
 * Nothing of the cluster's data is written to a local disk.
 */
function stagedSource(options: BackupOptions, sql: SqlSettings, stage: NonNullable<BackupOptions['stage']>): Source {
  return {
    afterPack: (script) => script,
    excluded: [],
    readsDataDir: false,
    take: (script) =>
      script
        .step("Run MO's BACKUP", async (input, trail, report, signal) => {
          const {backend, target} = await stagePrefix(stage, input.id)
          // One listing of the stage's runs: the others' leftovers, and whether this run's prefix is empty.
          const runs = await stagedRuns(stage)
          const own = `online-${input.id}/`
          for (const line of leftoverPrefixes(stage, runs, own)) options.onWarning?.(line)
          if (runs.has(own)) {
            throw usageError(
              `the staging prefix ${backend.location} is not empty`,
              'MatrixOne never overwrites a file of a backup: pass another --stage prefix, or empty this one',
            )
          }

          trail.release = () => removeStage(backend, options.onWarning)
          report.output(`MO writes into ${backend.location}`)
          let staged: StagedFolder | undefined
          const mo = await runMoBackup(sql, {
            baseTs: input.base?.record.backupTs,
            parallelism: options.parallelism,
            s3: target,
            signal,
            async summary(readSignal) {
              staged = await openStaged(backend, readSignal)
              return staged.summary
            },
            type: options.type,
          })
          if (!staged) throw integrityError(`MO's BACKUP left nothing readable in ${backend.location}`, RERUN)
          report.output(
            `${mo.serverVersion}: backup ts ${mo.backupTs}, ${formatBytes(mo.size)} in ${formatDuration(mo.elapsedMs)}`,
          )
          return {backend, mo, staged}
        })
        .step("Check MO's checksums", async ({staged}, _trail, report) => {
          const files = staged.entries.filter((e) => e.type === 'file').length
          report.output(
            `${files} objects, ${formatBytes(staged.bytes)}: metadata checked now, every object as it streams into the pack`,
          )
        })
        .step(SCAN, async ({backend, staged}, trail, report) => {
          trail.needed = {bytes: staged.bytes, what: PACK_WHAT}
          report.output(`${staged.entries.filter((e) => e.type === 'file').length} files, ${formatBytes(staged.bytes)}`)
          const packing: Packing = {
            entries: staged.entries,
            plan: null,
            read: staged.read,
            release: () => removeStage(backend, options.onWarning),
            root: backend.location,
          }
          return {packing}
        })
        .stepIf(options.type === 'incremental', PLAN, async (input, trail, report) => {
          const plan = planOnlineIncremental(input.packing.entries, input.staged.taeList, baseOf(input).manifest)
          trail.needed = {bytes: plan.changedBytes, what: PACK_WHAT}
          report.output(planSummary(plan, options))
          return {packing: {...input.packing, entries: plan.toPack, plan}}
        }),
  }
}

/** A staging prefix's runs: `online-<id>/` → its objects and their bytes. */
type StagedRuns = Map<string, {bytes: number; objects: number}>

/** The fresh prefix of run `id` under the stage, as a backend, and as MO's S3OPTION names it. */
async function stagePrefix(
  stage: NonNullable<BackupOptions['stage']>,
  id: string,
): Promise<{backend: S3Backend; target: MoS3Target}> {
  const {S3Backend} = await import('../../repo/s3.js')
  const prefix = `${stage.s3.prefix}online-${id}/`
  const s3 = {...stage.s3, prefix}
  const backend = new S3Backend({location: `s3://${s3.bucket}/${prefix.slice(0, -1)}`, s3})
  const target: MoS3Target = {
    accessKeyId: s3.credentials?.accessKeyId,
    bucket: s3.bucket,
    endpoint: s3.endpoint,
    filepath: prefix.slice(0, -1),
    isMinio: s3.forcePathStyle,
    region: s3.region,
    roleArn: s3.roleArn,
    secretAccessKey: s3.credentials?.secretAccessKey,
  }
  return {backend, target}
}

/**
 * What killed online backups left: a run removes its folder (or staging prefix) when it ends,
 * whatever happened, but a kill -9 or a power loss leaves it, a copy of MO's data that nothing else
 * removes. Online backups take no lock of the data dir (MO keeps running, and two repositories may
 * take them at once), so a folder of another id may be a live run's: they are named, never removed.
 * Only names of our own pattern with a UUIDv7 id are named (a name someone else made, control
 * characters and all, is not ours to describe).
 */
function leftoverLine(where: string, started: Date, size: string, remove: string): string {
  return `${where} is left by an online backup started ${started.toISOString()} that did not finish (or one running now)${size}: remove it (${remove}) once no online backup of this MatrixOne runs`
}

/** Folders of other online runs beside `folder` (this run's), in its parent. */
async function leftoverFolders(folder: string): Promise<string[]> {
  const parent = dirname(folder)
  const own = basename(folder)
  const prefix = own.slice(0, own.lastIndexOf('.online-') + '.online-'.length)
  const names = await readdir(parent).catch(() => [] as string[])
  const lines: string[] = []
  for (const name of names.filter((n) => n.startsWith(prefix) && n !== own).sort()) {
    const started = idTime(name.slice(prefix.length))
    if (started) lines.push(leftoverLine(join(parent, name), started, '', `rm -rf ${join(parent, name)}`))
  }

  return lines
}

/** The runs' prefixes `online-<id>/` under the stage, with their objects' count and bytes. */
async function stagedRuns(stage: NonNullable<BackupOptions['stage']>): Promise<StagedRuns> {
  const {S3Backend} = await import('../../repo/s3.js')
  const {bucket, prefix} = stage.s3
  const root = new S3Backend({location: `s3://${bucket}/${prefix}`.replace(/\/$/, ''), s3: stage.s3})
  const runs: StagedRuns = new Map()
  for (const o of await root.list('online-')) {
    const run = o.key.slice(0, o.key.indexOf('/') + 1)
    if (!run) continue
    const seen = runs.get(run) ?? {bytes: 0, objects: 0}
    runs.set(run, {bytes: seen.bytes + o.size, objects: seen.objects + 1})
  }

  return runs
}

/** A line for each run's prefix but `own` (this run's). */
function leftoverPrefixes(stage: NonNullable<BackupOptions['stage']>, runs: StagedRuns, own: string): string[] {
  const {bucket, prefix} = stage.s3
  const lines: string[] = []
  for (const [run, {bytes, objects}] of runs) {
    const started = idTime(run.slice('online-'.length, -1))
    if (run === own || !started) continue
    const where = `s3://${bucket}/${prefix}${run}`
    lines.push(
      leftoverLine(where, started, ` (${objects} objects, ${formatBytes(bytes)})`, `aws s3 rm --recursive ${where}`),
    )
  }

  return lines
}

/** Deletes the staging prefix; a failure is a warning that says what is left and how to remove it. */
async function removeStage(backend: S3Backend, onWarning?: (message: string) => void): Promise<void> {
  try {
    await backend.removePrefix('')
  } catch (error) {
    onWarning?.(
      `the staging prefix ${backend.location} could not be deleted (${describeError(error)}): MO's backup files are left there; remove them with e.g. aws s3 rm --recursive ${backend.location}/`,
    )
  }
}
