import {stat} from 'node:fs/promises'
import {hostname} from 'node:os'
import {performance} from 'node:perf_hooks'

import type {Manifest} from '../archive/types.js'
import type {SavedObject} from '../repo/backend.js'
import type {Source} from './sources/types.js'

import {encryptBuffer} from '../archive/age.js'
import {compressorName} from '../archive/compress.js'
import {encodeManifest, manifestTotals} from '../archive/manifest.js'
import {checkNames} from '../archive/walk.js'
import {writeArchive} from '../archive/write.js'
import {describeDeadRun, removeLeftovers} from '../cleanup.js'
import {type DataDirLock, lockDataDir, resolveDataDir} from '../datadir-lock.js'
import {isBrError, usageError} from '../errors.js'
import {formatBytes, formatDuration} from '../format.js'
import {explainingFsErrors, type FsErrorContext} from '../fs-errors.js'
import {sha256Hex} from '../hash.js'
import {newBackupId} from '../id.js'
/**
 * A backup as one flow of named steps that every source shares (sources/: the stopped data dir,
 * a clone of it, or MO's BACKUP folder): check the paths (the repository, a clone or online folder
 * never inside the data directory) and that nothing answers SQL when nothing will stop the
 * service; open (or create) the repository, take its writer lock and probe that a backup's objects
 * can be written; lock the data directory when the source reads it (one backup, restore or cleanup
 * of it at a time; what a dead run left is said and removed), check the data directory (every
 * directory listed), find the base of an incremental and read its manifest; then the source's
 * steps make the files ready (stop the service, scan, plan, clone…); pack → zstd → age straight
 * into the repository; the source's steps after the pack (start the service); publish the record,
 * built once and complete, and release the locks. Each step's output is the next one's input
 * (steps.ts Script); filesystem errors on the paths the user gave are explained by fs-errors.ts.
 *
 * Guarantees: the data directory is only read; the service is started again whatever happens
 * after it was stopped; objects are written under temporary names and the record (backup.json)
 * is published last and atomically, so a failed or interrupted backup is never listed and leaves
 * nothing half-written that looks complete (rollback removes what it wrote, then releases the
 * lock, so no other writer sees the leftovers). The data dir's lock records the stopped service
 * and the start command while it is down, so that the run after a kill -9 says so; a service
 * that could not be started again keeps that record. It does not protect against a service that keeps
 * writing while --service none says it is stopped: a file that changes size while read fails the
 * backup loudly.
 */
import {backupBackend} from '../mo/layout.js'
import {installedBuild} from '../mo/version.js'
import {recordBinding, signRecord} from '../repo/authenticity.js'
import {acquireLock} from '../repo/lock.js'
import {archiveFileName, manifestFileName} from '../repo/paths.js'
import {openRepository} from '../repo/repository.js'
import {type BackupRecord, RECORD_FORMAT} from '../repo/types.js'
import {type Flow, Script, type ScriptContext, type ScriptStep} from '../steps.js'
import {TOOL} from '../tool.js'
import {loadBaseManifest, resolveBase} from './base.js'
import {checkBaseSigner, checkNotRunning, checkPaths} from './checks.js'
import {checkDataDir} from './data-dir.js'
import {cloneSource} from './sources/clone.js'
import {coldSource, PACK_WHAT} from './sources/cold.js'
import {onlineSource} from './sources/online.js'
import {
  type BackupOptions,
  type BackupTrail,
  type Begun,
  type CloneResult,
  type Opened,
  type Packed,
  type Published,
  type Taken,
} from './types.js'

export type {BackupOptions} from './types.js'

/** MO caches, rebuilt by MO itself: not worth backing up (DESIGN.md "The MO facts"). */
export const DEFAULT_EXCLUDES = ['shared-cache', 'tmp']

/**
 * What a cold backup leaves out: the defaults (unless `defaults` is false) and `extra`, each a path
 * relative to the data dir, normalised (no ./, no trailing /) and once. A path that cannot be
 * under the data dir (absolute, or climbing out with ..) would exclude nothing: refused.
 */
export function excludeList(extra: string[], options: {defaults: boolean}): string[] {
  const out: string[] = options.defaults ? [...DEFAULT_EXCLUDES] : []
  for (const raw of extra) {
    const path = raw.replaceAll(/^(\.\/)+|\/+$/g, '')
    if (path.startsWith('/') || path.split('/').includes('..') || path === '' || path === '.') {
      throw usageError(
        `--exclude ${raw}: not a path under the data directory`,
        'give it relative to the data directory, e.g. --exclude etl or --exclude shared-cache',
      )
    }

    if (!out.includes(path)) out.push(path)
  }

  return out
}

/** Where the files come from, as the options say: MO's BACKUP folder, a clone, or the data dir. */
export function sourceFor(options: BackupOptions): Source {
  if (options.mode === 'online') {
    // The command always gives it; a library caller that does not is told at once, not halfway.
    if (!options.sql) throw new Error('an online backup needs options.sql: where MO answers SQL')
    return onlineSource(options, options.sql)
  }

  return options.clone ? cloneSource(options) : coldSource(options)
}

export type BackupResult = BackupRecord & {
  /** --clone: what was cloned, and whether by reflink */
  clone: CloneResult | null
  /** the zstd implementation and how it ran (workers, frame size): a slow fallback shows */
  compressor: string
  /** from the stop command until the service answered SQL again (null: not managed) */
  serviceDownMs: null | number
}

/** A backup ready to run: the flow (for runFlow or the task tree), its context, and its result once it ran. */
export interface BackupRun {
  ctx: ScriptContext<BackupTrail>
  flow: Flow<ScriptContext<BackupTrail>>
  /** the published record, the clone and the downtime; only after the flow ran to its end */
  result(): BackupResult
}

/**
 * The one script every source shares; the source's steps go where the files are made ready, and
 * after the pack. Steps that do not apply (the base of a full, a lock for a source that does not
 * read the data dir) are left out here, from the options, not skipped at run time.
 */
export function backupFlow(options: BackupOptions, source: Source = sourceFor(options)): BackupRun {
  const script = Script.begin<BackupTrail, Begun>()
    .step('Check paths and service', checkStep)
    .step('Open repository', openStep)
    .stepIf(source.readsDataDir, 'Lock the data directory', lockStep)
    .step('Check data directory', checkDataDirStep(source))
    .stepIf(options.type === 'incremental', 'Find the base backup', findBaseStep)
    .pipe((opened) => source.take(opened))
    .step('Pack, compress and encrypt', packStep)
    .pipe((packed) => source.afterPack(packed))
    .step('Publish', publishStep(source))
  const id = newBackupId()
  const values: Begun = {
    base: null,
    clone: null,
    dataDirLock: undefined,
    id,
    mo: null,
    options,
    serviceDownMs: null,
    startedAt: new Date(),
  }
  const ctx: ScriptContext<BackupTrail> = {state: {id, options, paths: [], wroteObjects: false}, values}
  return {
    ctx,
    flow: explainingFsErrors(script.flow(rollback), (c) => fsErrorContext(c.state)),
    result() {
      if (!('record' in ctx.values)) throw new Error('the backup has no result: its flow did not run to the end')
      const {clone, record, serviceDownMs} = script.output(ctx)
      return {
        ...record,
        clone: clone ? {...clone, ms: Math.round(clone.ms)} : null,
        compressor: compressorName(undefined, options.parallelism),
        serviceDownMs: serviceDownMs === null ? null : Math.round(serviceDownMs),
      }
    },
  }
}

/** Undoes what the trail says was done, in order; the locks last. */
async function rollback(trail: BackupTrail, _error: unknown, report: {output(line: string): void}): Promise<void> {
  try {
    await trail.release?.()
    if (trail.wroteObjects && trail.repo) {
      report.output(`removing the unfinished backup ${trail.id}`)
      await trail.repo.deleteBackup(trail.id)
    }

    if (trail.restart) {
      report.output('starting the service again')
      await trail.restart(new AbortController().signal)
    }
  } finally {
    // Last: nobody else may write into the repository before our leftovers are gone. A service
    // that did not start again keeps the data dir's lock and its record of the stop.
    await releaseLocks(trail, {keepDataDirLock: trail.restart !== undefined})
  }
}

/** The paths of a backup, for fs-errors.ts; ENOSPC needs the bytes to pack (before compression). */
function fsErrorContext(trail: BackupTrail): FsErrorContext {
  const {options} = trail
  // An S3 repository is no path of this host: its errors are the backend's, not the filesystem's.
  const repo = options.repo.s3 ? undefined : {flag: '--path', path: options.repo.location, role: 'repository'}
  const lock = trail.dataDirLock?.paths
  return {
    needed: trail.needed?.bytes,
    neededWhat: trail.needed?.what ?? PACK_WHAT,
    paths: [
      ...(repo ? [repo] : []),
      {flag: '--data-dir', path: options.dataDir, role: 'data directory'},
      ...(lock ? [{flag: '--data-dir', path: lock.real, role: 'data directory'}] : []),
      ...(lock ? [{flag: '--data-dir', path: lock.parent, role: 'the directory that holds the data directory'}] : []),
      ...(options.cloneDir ? [{flag: '--clone-dir', path: options.cloneDir, role: 'clone directory'}] : []),
      ...(options.onlineDir ? [{flag: '--online-dir', path: options.onlineDir, role: 'online backup directory'}] : []),
      ...trail.paths,
    ],
    writing: trail.writing ?? (trail.wroteObjects ? repo : undefined),
  }
}

/** Releases the repository lock and the data dir's lock if this run holds them; safe to call twice. */
async function releaseLocks(trail: BackupTrail, options: {keepDataDirLock?: boolean} = {}): Promise<void> {
  const {dataDirLock, unlock} = trail
  trail.unlock = undefined
  try {
    await unlock?.()
  } finally {
    if (options.keepDataDirLock) {
      // Kept on purpose (the service is down): the file stays for the next run, the heartbeat stops.
      await dataDirLock?.keep()
    } else {
      trail.dataDirLock = undefined
      await dataDirLock?.release()
    }
  }
}

const checkStep: ScriptStep<BackupTrail, Begun, void> = async ({options}, _trail, report) => {
  // Before the repository is created: never inside the data directory.
  await checkPaths(options)
  await checkNotRunning(options)
  report.output(
    options.repo.s3
      ? `repository ${options.repo.location}`
      : `repository ${options.repo.location} is outside the data directory`,
  )
}

const openStep: ScriptStep<BackupTrail, Begun, Pick<Opened, 'repo'>> = async ({id, options}, trail, report, signal) => {
  const repo = await openRepository(options.repo, {create: true})
  trail.repo = repo
  trail.unlock = await acquireLock(repo, {
    command: 'br backup',
    dataDir: options.dataDir,
    async onTakeOver(holder) {
      // The repository's dead writer was a backup of another data dir: say what it left there.
      if (!holder.dataDir || holder.dataDir === options.dataDir) return
      for (const line of await describeDeadRun(holder.dataDir)) options.onWarning?.(line)
    },
    onWarning: options.onWarning,
    signal,
    waitSeconds: options.lockWaitSeconds,
  })
  // The lock was written at the root; a backup's objects go under backups/: try that too.
  await repo.probeWrite(id)
  report.output(`${repo.describe()}, locked for writing`)
  return {repo}
}

const lockStep: ScriptStep<BackupTrail, Begun, Pick<Begun, 'dataDirLock'>> = async (input, trail, report) => {
  const dataDirLock = await lockColdDataDir(input)
  trail.dataDirLock = dataDirLock
  if (!dataDirLock) return {dataDirLock}
  // We hold the lock: whatever a run left beside the data dir, its owner is dead.
  const {notes} = await removeLeftovers(dataDirLock, {cloneDir: input.options.cloneDir})
  for (const line of notes) report.output(line)
  return {dataDirLock}
}

function checkDataDirStep(source: Source): ScriptStep<BackupTrail, Begun, void> {
  return async ({options}, _trail, report, signal) => {
    const info = await checkDataDir(options.dataDir)
    // Names a backup cannot keep are refused now, before the service stops, not halfway.
    if (source.readsDataDir) await checkNames(options.dataDir, {exclude: options.exclude, signal})
    report.output(`${options.dataDir}: ${info.entries} top-level entries`)
  }
}

const findBaseStep: ScriptStep<BackupTrail, Opened, Pick<Begun, 'base'>> = async ({options, repo}, _trail, report) => {
  const record = await resolveBase(repo, {
    baseId: options.baseId,
    dataDir: options.dataDir,
    force: options.force,
    host: hostname(),
    onWarning: options.onWarning,
  })
  if ((record.mode === 'online') !== (options.mode === 'online')) {
    throw usageError(
      `base ${record.id} is ${record.mode === 'online' ? 'an online' : 'a cold'} backup: ${options.mode} incrementals need ${options.mode} bases`,
      `take --mode ${options.mode} --type full first, or pass --base with a ${options.mode} backup`,
    )
  }

  if (options.signing) checkBaseSigner(record, options.signing)
  const manifest = await loadBaseManifest(repo, record, {cache: options.cache, keys: options.decrypt})
  report.output(`base ${record.id} (${record.type}, ${record.createdAt}), chain of ${record.chain.length}`)
  return {base: {manifest, record}}
}

const packStep: ScriptStep<BackupTrail, Taken, Pick<Packed, 'archive' | 'manifest'>> = async (
  input,
  trail,
  report,
  signal,
) => {
  const {base, id, options, packing, repo} = input
  const started = performance.now()
  const writer = await repo.openWriter(id, archiveFileName(options.encrypt))
  trail.wroteObjects = true
  let written: Awaited<ReturnType<typeof writeArchive>>
  let saved: SavedObject
  try {
    written = await writeArchive({
      backupId: id,
      encrypt: options.encrypt,
      entries: packing.entries,
      level: options.level,
      manifestBase: {
        chain: [...(base?.record.chain ?? []), id],
        createdAt: input.startedAt.toISOString(),
        deleted: packing.plan?.deleted ?? [],
        type: options.type,
      },
      onProgress: (p) => report.progress(p),
      output: writer.stream,
      parallelism: options.parallelism,
      read: packing.read,
      root: packing.root,
      signal,
      unchanged: packing.plan?.unchanged,
    })
    saved = await writer.commit()
  } catch (error) {
    await writer.abort()
    throw error
  }

  await packing.release()
  trail.release = undefined
  const ms = performance.now() - started
  const {archived} = sizesOf(written.manifest)
  report.output(`zstd: ${compressorName(undefined, options.parallelism)}`)
  report.output(
    `${formatBytes(archived)} in ${formatDuration(ms)} (${(archived / 1e6 / (ms / 1000)).toFixed(0)} MB/s) → ${formatBytes(written.archiveSize)} stored`,
  )
  const archive: Packed['archive'] = {sha256: written.archiveSha256, size: written.archiveSize}
  if (saved.checksum) archive.storeChecksum = saved.checksum
  return {archive, manifest: written.manifest}
}

function publishStep(source: Source): ScriptStep<BackupTrail, Packed, Pick<Published, 'record'>> {
  return async (input, trail, report) => {
    const {id, options, repo} = input
    // A cold backup of a MatrixOne install records what the install says of itself (version check on restore).
    const installed = options.mode === 'cold' ? await installedBuild(options.dataDir) : undefined
    const fields = recordFields(input, source, new Date(), installed)
    // manifest.age names the record it belongs to: with a passphrase, that binds every field.
    const manifest = {...input.manifest, record: recordBinding(fields)}
    const plain = encodeManifest(manifest)
    const bytes = await encryptBuffer(plain, options.encrypt)
    const file = manifestFileName(options.encrypt)
    const saved = await repo.writeObject(id, file, bytes)
    const stored: BackupRecord['manifest'] = {
      file,
      plainSha256: sha256Hex(plain),
      sha256: sha256Hex(bytes),
      size: bytes.length,
    }
    if (saved.checksum) stored.storeChecksum = saved.checksum
    const unsigned = completeRecord(fields, stored)
    // The signature covers the record, which names the archive's and the manifest's SHA-256 (and
    // the store's checksums, which verify --quick trusts in their place).
    const record = options.signing ? signRecord(unsigned, options.signing) : unsigned
    // A run whose lock was taken over publishes nothing: the new holder may be pruning this very
    // backup as a dead run's leftover. Exit 4, and the rollback removes what this run wrote.
    await trail.unlock?.checkHeld(`publishing backup ${id}`)
    await repo.publishRecord(record)
    // Published: from now on a failure (releasing the locks) must never delete it.
    trail.wroteObjects = false
    await releaseLocks(trail)
    // So that the next incremental can be planned on a host without the identity.
    await options.cache?.put(repo.path, manifest).catch(() => {})
    report.output(`backup ${id} complete`)
    return {record}
  }
}

/** Everything the record says but manifest.age itself (which names the record) and the signature (made after). */
type RecordFields = Omit<BackupRecord, 'manifest' | 'signature'>

function recordFields(
  input: Packed,
  source: Source,
  completedAt: Date,
  installed?: BackupRecord['source']['mo'],
): RecordFields {
  const {archive, base, id, manifest, mo, options, startedAt} = input
  const {encrypt} = options
  const count = (type: string) => manifest.entries.filter((e) => e.type === type).length
  return {
    archive: {compression: 'zstd', file: archiveFileName(encrypt), level: options.level, ...archive},
    backupTs: mo?.backupTs ?? startedAt.toISOString(),
    base: base?.record.id ?? null,
    chain: manifest.chain,
    completedAt: completedAt.toISOString(),
    counts: {dirs: count('dir'), files: count('file'), symlinks: count('symlink')},
    createdAt: startedAt.toISOString(),
    durationMs: completedAt.getTime() - startedAt.getTime(),
    encryption: {
      passphrase: encrypt.type === 'passphrase',
      recipients: encrypt.type === 'recipients' ? encrypt.recipients : [],
      type: encrypt.type,
    },
    excluded: source.excluded,
    format: RECORD_FORMAT,
    id,
    mode: options.mode,
    sizes: sizesOf(manifest),
    source: {
      dataDir: options.dataDir,
      host: hostname(),
      ...(mo ? {mo: onlineBuild(mo.buildInfo, manifest.entries)} : installed ? {mo: installed} : {}),
      serverVersion: mo?.serverVersion ?? null,
    },
    tool: TOOL,
    type: options.type,
  }
}

/** The source MO's build and SHARED backend, as an online backup's mo_meta and sidecars tell them. */
function onlineBuild(
  buildInfo: Record<string, string>,
  entries: Packed['manifest']['entries'],
): NonNullable<BackupRecord['source']['mo']> {
  let sharedBackend: 'DISK' | 'DISK-V2' | null = null
  try {
    sharedBackend = backupBackend(entries.flatMap((e) => (e.type === 'file' ? [e] : [])))
  } catch {
    // an incremental's manifest may lack the sidecars: the restore reads the form from its own chain
  }

  return {commit: buildInfo.CommitID || null, sharedBackend, version: buildInfo.Version || null}
}

/** The record with its manifest, unsigned; its keys in the order backup.json has always had. */
function completeRecord(fields: RecordFields, manifest: BackupRecord['manifest']): BackupRecord {
  const {archive, backupTs, base, chain, completedAt, counts, createdAt, durationMs, encryption} = fields
  const {excluded, format, id, mode, sizes, source, tool, type} = fields
  return {
    archive,
    backupTs,
    base,
    chain,
    completedAt,
    counts,
    createdAt,
    durationMs,
    encryption,
    excluded,
    format,
    id,
    manifest,
    mode,
    signature: null,
    sizes,
    source,
    tool,
    type,
  }
}

/** The bytes of the files the manifest lists (total), and of those in this backup's own archive. */
function sizesOf(manifest: Manifest): BackupRecord['sizes'] {
  const {bytes, ownBytes} = manifestTotals(manifest)
  return {archived: ownBytes, total: bytes}
}

/**
 * The data dir's lock for a cold backup. A backup that only reads (no service to stop, no clone)
 * may run where it cannot write beside the data dir: then it warns and goes on without the lock.
 */
async function lockColdDataDir({id, options}: Begun): Promise<DataDirLock | undefined> {
  const paths = await resolveDataDir(options.dataDir)
  // A data dir whose parent is missing is refused by the next step; never create it here.
  if (!(await stat(paths.parent).catch(() => null))) return undefined
  try {
    return await lockDataDir(options.dataDir, {backupId: id, command: 'br backup', onWarning: options.onWarning})
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? ''
    if (isBrError(error) || !['EACCES', 'EPERM', 'EROFS'].includes(code) || options.service || options.clone)
      throw error
    options.onWarning?.(
      `cannot lock ${options.dataDir} (${code} on ${paths.parent}): backing up without the data dir's lock, so a restore into it at the same time is not refused`,
    )
    return undefined
  }
}
