/**
 * A cold full backup as a flow of named steps: check the paths (the repository, a clone or online
 * folder never inside the data directory) and that nothing answers SQL when nothing will stop the
 * service; open (or create) the repository, take its writer lock and probe that a backup's objects
 * can be written; lock the data directory (cold: one backup, restore or cleanup of it at a time;
 * what a dead run left is said and removed), check the data directory (every directory listed),
 * find the base of an incremental and read its manifest, check the room for a --clone; only then
 * stop the service, scan, pack → zstd → age straight into the repository, start the service,
 * publish the record and release the lock. Filesystem errors on the paths the user gave are
 * explained by fs-errors.ts.
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
import {rm, stat} from 'node:fs/promises'
import {hostname} from 'node:os'
import {dirname} from 'node:path'
import {performance} from 'node:perf_hooks'

import type {DecryptOptions, EncryptOptions, Manifest} from '../archive/types.js'
import type {ServiceControl} from '../service/control.js'
import type {SqlSettings} from '../service/types.js'
import type {Flow} from '../steps.js'
import type {ManifestCache} from './manifest-cache.js'

import {encryptBuffer} from '../archive/age.js'
import {encodeManifest} from '../archive/manifest.js'
import {checkNames, scanDataDir, type ScannedEntry} from '../archive/walk.js'
import {writeArchive} from '../archive/write.js'
import {describeDeadRun, removeLeftovers} from '../cleanup.js'
import {type DataDirLock, lockDataDir, resolveDataDir} from '../datadir-lock.js'
import {integrityError, isBrError, usageError} from '../errors.js'
import {formatBytes, formatDuration} from '../format.js'
import {explainingFsErrors, type FsErrorContext} from '../fs-errors.js'
import {sha256Hex} from '../hash.js'
import {newBackupId} from '../id.js'
import {type MoBackupResult, runMoBackup} from '../mo/backup-sql.js'
import {parseTaeList, TAE_LIST} from '../mo/meta.js'
import {checkSidecars, readVerifiedFile} from '../mo/sidecars.js'
import {overlap} from '../path-overlap.js'
import {recordBinding, signatureState, signRecord} from '../repo/authenticity.js'
import {acquireLock, type Unlock} from '../repo/lock.js'
import {archiveFileName, manifestFileName} from '../repo/paths.js'
import {openRepository, type Repository} from '../repo/repository.js'
import {type BackupRecord, RECORD_FORMAT} from '../repo/types.js'
import {type SigningKey} from '../signing.js'
import {TOOL} from '../tool.js'
import {loadBaseManifest, resolveBase} from './base.js'
import {checkCloneRoom, cloneFiles, clonePathFor, type CloneResult, removeClone} from './clone.js'
import {checkDataDir} from './data-dir.js'
import {onlineFolderFor, planOnlineIncremental} from './online.js'
import {type IncrementalPlan, planIncremental} from './plan.js'

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

export interface BackupOptions {
  /** --service none while something answers SQL: back up anyway, with a warning (default: refuse) */
  allowRunning?: boolean
  /** incrementals: the base's id (or prefix); default the newest backup of this data dir */
  baseId?: string
  /** where manifests are cached for later incrementals (none: no cache) */
  cache?: ManifestCache
  /** incrementals: decide by content hash instead of size and mtime */
  checksum: boolean
  /** cold: copy the files to pack while the service is stopped, start it, then pack from the copy */
  clone: boolean
  /** where the clone goes (default: beside the data dir, where reflinks can work) */
  cloneDir?: string
  dataDir: string
  /** keys to read the base's manifest when it is not cached */
  decrypt: DecryptOptions
  encrypt: EncryptOptions
  /** paths relative to the data dir left out of a cold backup: excludeList() */
  exclude: string[]
  /** incrementals: accept a base taken from another data dir or host */
  force: boolean
  /** cold with service null: does something answer SQL where the service would (then refuse, or warn with allowRunning) */
  isRunning?: () => Promise<boolean>
  level: number
  /** seconds to wait for the repository lock */
  lockWaitSeconds: number
  /** cold: read the stopped data dir; online: MO's BACKUP statement while it runs */
  mode: 'cold' | 'online'
  /** online: where MO's BACKUP writes its folder (default beside the data dir) */
  onlineDir?: string
  onWarning?: (message: string) => void
  /** online: BACKUP's PARALLELISM */
  parallelism: number
  repoPath: string
  /** null: the service is not managed, the caller vouches that it is stopped */
  service: null | ServiceControl
  /** the writer key's signing half; null: the record is not signed */
  signing: null | SigningKey
  /** online: how to reach MO over SQL */
  sql?: SqlSettings
  type: 'full' | 'incremental'
}

export interface BackupContext {
  base?: BackupRecord
  baseManifest?: Manifest
  cloned?: CloneResult
  /** the clone's directory, once it may exist (--clone); removed after the pack and on rollback */
  clonePath?: string
  /** cold: the data dir's lock, once held */
  dataDirLock?: DataDirLock
  entries?: ScannedEntry[]
  id: string
  manifest?: Manifest
  /** online: what MO's BACKUP reported */
  mo?: MoBackupResult
  /** online: the folder MO's BACKUP writes, once it may exist; removed after the pack and on rollback */
  onlineFolder?: string
  options: BackupOptions
  plan?: IncrementalPlan
  record?: BackupRecord
  repo?: Repository
  serviceDownMs?: number
  serviceStoppedAt?: number
  startedAt: Date
  /** set once the service was stopped and is not yet running again */
  stopped: boolean
  /** releases the repository lock: the last step and the rollback call it (releaseLock) */
  unlock?: Unlock
  /** objects this backup has written so far (for the rollback) */
  wroteObjects: boolean
}

export function newBackupContext(options: BackupOptions): BackupContext {
  return {id: newBackupId(), options, startedAt: new Date(), stopped: false, wroteObjects: false}
}

export function backupFlow(): Flow<BackupContext> {
  return explainingFsErrors(flow(), fsErrorContext)
}

/** The paths of a backup, for fs-errors.ts; ENOSPC needs the bytes to pack (before compression). */
function fsErrorContext(ctx: BackupContext): FsErrorContext {
  const {options} = ctx
  const parent = ctx.dataDirLock?.paths.parent
  const packing = ctx.plan ? ctx.plan.toPack : ctx.entries
  return {
    needed: packing?.reduce((n, e) => n + (e.type === 'file' ? e.size : 0), 0),
    neededWhat: ctx.cloned || !ctx.clonePath ? 'the files to pack, before compression' : 'the files to clone',
    paths: [
      {flag: '--path', path: options.repoPath, role: 'repository'},
      {flag: '--data-dir', path: options.dataDir, role: 'data directory'},
      ...(ctx.dataDirLock ? [{flag: '--data-dir', path: ctx.dataDirLock.paths.real, role: 'data directory'}] : []),
      ...(parent ? [{flag: '--data-dir', path: parent, role: 'the directory that holds the data directory'}] : []),
      ...(options.cloneDir ? [{flag: '--clone-dir', path: options.cloneDir, role: 'clone directory'}] : []),
      ...(ctx.clonePath ? [{flag: '--clone-dir', path: ctx.clonePath, role: 'clone directory'}] : []),
      ...(options.onlineDir ? [{flag: '--online-dir', path: options.onlineDir, role: 'online backup directory'}] : []),
      ...(ctx.onlineFolder ? [{flag: '--online-dir', path: ctx.onlineFolder, role: 'online backup folder'}] : []),
    ],
    writing:
      ctx.clonePath && !ctx.cloned
        ? {flag: '--clone-dir', path: ctx.clonePath, role: 'clone directory'}
        : ctx.wroteObjects
          ? {flag: '--path', path: options.repoPath, role: 'repository'}
          : undefined,
  }
}

function flow(): Flow<BackupContext> {
  return {
    async rollback(ctx, _error, report) {
      try {
        if (ctx.clonePath) await removeClone(ctx.clonePath)
        if (ctx.onlineFolder) await rm(ctx.onlineFolder, {force: true, recursive: true})
        if (ctx.wroteObjects && ctx.repo) {
          report.output(`removing the unfinished backup ${ctx.id}`)
          await ctx.repo.deleteBackup(ctx.id)
        }

        if (ctx.stopped && ctx.options.service) {
          report.output('starting the service again')
          await startService(ctx, new AbortController().signal)
        }
      } finally {
        // Last: nobody else may write into the repository before our leftovers are gone. A service
        // that did not start again keeps the data dir's lock and its record of the stop.
        await releaseLock(ctx, {keepDataDirLock: ctx.stopped})
      }
    },
    steps: [
      {
        async run(ctx, report) {
          // Before the repository is created: never inside the data directory.
          await checkPaths(ctx.options)
          await checkNotRunning(ctx.options)
          report.output(`repository ${ctx.options.repoPath} is outside the data directory`)
        },
        title: 'Check paths and service',
      },
      {
        async run(ctx, report, signal) {
          ctx.repo = await openRepository(ctx.options.repoPath, {create: true})
          ctx.unlock = await acquireLock(ctx.repo, {
            command: 'br backup',
            dataDir: ctx.options.dataDir,
            async onTakeOver(holder) {
              // The repository's dead writer was a backup of another data dir: say what it left there.
              if (!holder.dataDir || holder.dataDir === ctx.options.dataDir) return
              for (const line of await describeDeadRun(holder.dataDir)) ctx.options.onWarning?.(line)
            },
            onWarning: ctx.options.onWarning,
            signal,
            waitSeconds: ctx.options.lockWaitSeconds,
          })
          // The lock was written at the root; a backup's objects go under backups/: try that too.
          await ctx.repo.probeWrite(ctx.id)
          report.output(`${ctx.repo.describe()}, locked for writing`)
        },
        title: 'Open repository',
      },
      {
        async run(ctx, report) {
          ctx.dataDirLock = await lockColdDataDir(ctx)
          if (!ctx.dataDirLock) return
          // We hold the lock: whatever a run left beside the data dir, its owner is dead.
          const {notes} = await removeLeftovers(ctx.dataDirLock, {cloneDir: ctx.options.cloneDir})
          for (const line of notes) report.output(line)
        },
        skip: (ctx) => (ctx.options.mode === 'online' ? 'online: MO keeps running, nothing is stopped' : false),
        title: 'Lock the data directory',
      },
      {
        async run(ctx, report, signal) {
          const info = await checkDataDir(ctx.options.dataDir)
          // Names a backup cannot keep are refused now, before the service stops, not halfway.
          if (ctx.options.mode !== 'online')
            await checkNames(ctx.options.dataDir, {exclude: ctx.options.exclude, signal})
          report.output(`${ctx.options.dataDir}: ${info.entries} top-level entries`)
        },
        title: 'Check data directory',
      },
      {
        async run(ctx, report) {
          const {options} = ctx
          ctx.base = await resolveBase(ctx.repo!, {
            baseId: options.baseId,
            dataDir: options.dataDir,
            force: options.force,
            host: hostname(),
            onWarning: options.onWarning,
          })
          if ((ctx.base.mode === 'online') !== (options.mode === 'online')) {
            throw usageError(
              `base ${ctx.base.id} is ${ctx.base.mode === 'online' ? 'an online' : 'a cold'} backup: ${options.mode} incrementals need ${options.mode} bases`,
              `take --mode ${options.mode} --type full first, or pass --base with a ${options.mode} backup`,
            )
          }

          if (options.signing) checkBaseSigner(ctx.base, options.signing)
          ctx.baseManifest = await loadBaseManifest(ctx.repo!, ctx.base, {cache: options.cache, keys: options.decrypt})
          report.output(
            `base ${ctx.base.id} (${ctx.base.type}, ${ctx.base.createdAt}), chain of ${ctx.base.chain.length}`,
          )
        },
        skip: (ctx) => (ctx.options.type === 'incremental' ? false : 'full backup'),
        title: 'Find the base backup',
      },
      {
        async run(ctx, report, signal) {
          // An estimate from the running service's files: cloneFiles checks again with the stopped ones.
          const entries = await scanDataDir(ctx.options.dataDir, {exclude: ctx.options.exclude, signal})
          const toClone = ctx.baseManifest
            ? (await planIncremental(entries, ctx.baseManifest, {checksum: false, root: ctx.options.dataDir, signal}))
                .toPack
            : entries
          const real = ctx.dataDirLock?.paths.real ?? (await resolveDataDir(ctx.options.dataDir)).real
          const room = await checkCloneRoom(
            ctx.options.dataDir,
            clonePathFor(real, ctx.id, ctx.options.cloneDir),
            toClone,
          )
          report.output(
            room.reflink
              ? `${dirname(clonePathFor(real, ctx.id, ctx.options.cloneDir))} can reflink: the clone takes no space`
              : `about ${formatBytes(room.bytes)} to copy, ${formatBytes(room.free)} free`,
          )
        },
        skip: (ctx) => (ctx.options.clone && ctx.options.mode === 'cold' ? false : 'no --clone'),
        title: 'Check room for the clone',
      },
      {
        async run(ctx, report, signal) {
          const service = ctx.options.service!
          // Before the stop: a run killed during a slow stop leaves the service down too.
          await ctx.dataDirLock?.update({
            service: {describe: service.describe, start: service.startHint ?? service.describe},
          })
          report.output(service.describe)
          ctx.serviceStoppedAt = performance.now()
          await service.stop(signal)
          ctx.stopped = true
        },
        skip: (ctx) =>
          ctx.options.mode === 'online'
            ? 'online: MO keeps running'
            : ctx.options.service
              ? false
              : 'not managed (--service none)',
        title: 'Stop service',
      },
      {
        async run(ctx, report, signal) {
          const {options} = ctx
          ctx.onlineFolder = onlineFolderFor(options.dataDir, ctx.id, options.onlineDir)
          report.output(`MO writes into ${ctx.onlineFolder}`)
          ctx.mo = await runMoBackup(options.sql!, {
            baseTs: ctx.base?.backupTs,
            dir: ctx.onlineFolder,
            parallelism: options.parallelism,
            signal,
            type: options.type,
          })
          report.output(
            `${ctx.mo.serverVersion}: backup ts ${ctx.mo.backupTs}, ${formatBytes(ctx.mo.size)} in ${formatDuration(ctx.mo.elapsedMs)}`,
          )
        },
        skip: (ctx) => (ctx.options.mode === 'online' ? false : 'cold backup'),
        title: "Run MO's BACKUP",
      },
      {
        async run(ctx, report, signal) {
          const checked = await checkSidecars(ctx.onlineFolder!, {signal})
          report.output(
            `${checked.files} files, ${formatBytes(checked.bytes)}: ${checked.viaSidecar} by .sha256 sidecar, ${checked.viaTaeList} by tae_list`,
          )
        },
        skip: (ctx) => (ctx.options.mode === 'online' ? false : 'cold backup'),
        title: "Check MO's checksums",
      },
      {
        async run(ctx, report, signal) {
          ctx.entries = ctx.onlineFolder
            ? await scanDataDir(ctx.onlineFolder, {signal})
            : await scanDataDir(ctx.options.dataDir, {exclude: ctx.options.exclude, signal})
          const files = ctx.entries.filter((e) => e.type === 'file')
          report.output(`${files.length} files, ${formatBytes(files.reduce((n, f) => n + f.size, 0))}`)
        },
        title: 'Scan data directory',
      },
      {
        async run(ctx, report, signal) {
          ctx.plan = ctx.onlineFolder
            ? planOnlineIncremental(
                ctx.entries!,
                parseTaeList((await readVerifiedFile(ctx.onlineFolder, TAE_LIST, signal)).toString('utf8')),
                ctx.baseManifest!,
              )
            : await planIncremental(ctx.entries!, ctx.baseManifest!, {
                checksum: ctx.options.checksum,
                root: ctx.options.dataDir,
                signal,
              })
          const changed = ctx.plan.toPack.filter((e) => e.type === 'file').length
          report.output(
            `${changed} new or changed files (${formatBytes(ctx.plan.changedBytes)}), ${ctx.plan.unchanged.length} unchanged, ${ctx.plan.deleted.length} deleted` +
              (ctx.options.checksum ? `; ${ctx.plan.reread} files re-read for --checksum` : ''),
          )
        },
        skip: (ctx) => (ctx.options.type === 'incremental' ? false : 'full backup'),
        title: 'Plan the incremental',
      },
      {
        async run(ctx, report, signal) {
          const entries = ctx.plan ? ctx.plan.toPack : ctx.entries!
          // Beside the directory a symlinked data dir points to: the same filesystem, where reflinks work.
          const real = ctx.dataDirLock?.paths.real ?? (await resolveDataDir(ctx.options.dataDir)).real
          ctx.clonePath = clonePathFor(real, ctx.id, ctx.options.cloneDir)
          await ctx.dataDirLock?.update({scratch: [ctx.clonePath]})
          ctx.cloned = await cloneFiles(ctx.options.dataDir, ctx.clonePath, entries, {
            onProgress: (done, total) =>
              report.progress({bytesDone: 0, bytesTotal: 0, filesDone: done, filesTotal: total}),
            signal,
          })
          const {bytes, files, ms, reflink} = ctx.cloned
          report.output(
            `${files} files, ${formatBytes(bytes)} ${reflink ? 'reflinked' : 'copied'} into ${ctx.clonePath} in ${formatDuration(ms)}`,
          )
        },
        skip: (ctx) => (ctx.options.clone ? false : 'packing straight from the data directory'),
        title: 'Clone the files to pack',
      },
      {
        async run(ctx, report, signal) {
          await startService(ctx, signal)
          report.output(`service down for ${formatDuration(ctx.serviceDownMs!)}`)
        },
        skip: (ctx) => (ctx.options.clone && ctx.options.service ? false : 'after the pack'),
        title: 'Start service',
      },
      {
        async run(ctx, report, signal) {
          const repo = ctx.repo!
          const started = performance.now()
          const writer = await repo.openWriter(ctx.id, archiveFileName(ctx.options.encrypt))
          ctx.wroteObjects = true
          try {
            const result = await writeArchive({
              backupId: ctx.id,
              encrypt: ctx.options.encrypt,
              entries: ctx.plan ? ctx.plan.toPack : ctx.entries!,
              level: ctx.options.level,
              manifestBase: {
                chain: [...(ctx.base?.chain ?? []), ctx.id],
                createdAt: ctx.startedAt.toISOString(),
                deleted: ctx.plan?.deleted ?? [],
                type: ctx.options.type,
              },
              onProgress: (p) => report.progress(p),
              output: writer.stream,
              root: ctx.onlineFolder ?? ctx.clonePath ?? ctx.options.dataDir,
              signal,
              unchanged: ctx.plan?.unchanged,
            })
            await writer.commit()
            ctx.manifest = result.manifest
            ctx.record = draftRecord(ctx, result)
          } catch (error) {
            await writer.abort()
            throw error
          }

          if (ctx.clonePath) await removeClone(ctx.clonePath)
          ctx.clonePath = undefined
          if (ctx.onlineFolder) await rm(ctx.onlineFolder, {force: true, recursive: true})
          ctx.onlineFolder = undefined
          const ms = performance.now() - started
          report.output(
            `${formatBytes(ctx.record.sizes.archived)} in ${formatDuration(ms)} (${(ctx.record.sizes.archived / 1e6 / (ms / 1000)).toFixed(0)} MB/s) → ${formatBytes(ctx.record.archive.size)} stored`,
          )
        },
        title: 'Pack, compress and encrypt',
      },
      {
        async run(ctx, report, signal) {
          await startService(ctx, signal)
          report.output(`service down for ${formatDuration(ctx.serviceDownMs!)}`)
        },
        skip: (ctx) =>
          ctx.options.mode === 'online'
            ? 'online: MO kept running'
            : ctx.options.service
              ? ctx.options.clone
                ? 'started after the clone'
                : false
              : 'not managed (--service none)',
        title: 'Start service',
      },
      {
        async run(ctx, report) {
          const repo = ctx.repo!
          const name = manifestFileName(ctx.options.encrypt)
          const completedAt = new Date()
          const draft: BackupRecord = {
            ...ctx.record!,
            completedAt: completedAt.toISOString(),
            durationMs: completedAt.getTime() - ctx.startedAt.getTime(),
          }
          // manifest.age names the record it belongs to: with a passphrase, that binds every field.
          ctx.manifest = {...ctx.manifest!, record: recordBinding(draft)}
          const plain = encodeManifest(ctx.manifest)
          const manifestBytes = await encryptBuffer(plain, ctx.options.encrypt)
          await repo.writeObject(ctx.id, name, manifestBytes)
          const unsigned: BackupRecord = {
            ...draft,
            manifest: {
              file: name,
              plainSha256: sha256Hex(plain),
              sha256: sha256Hex(manifestBytes),
              size: manifestBytes.length,
            },
            signature: null,
          }
          // The signature covers the record, which names the archive's and the manifest's SHA-256.
          const {signing} = ctx.options
          const record = signing ? signRecord(unsigned, signing) : unsigned
          await repo.publishRecord(record)
          ctx.record = record
          await releaseLock(ctx)
          // So that the next incremental can be planned on a host without the identity.
          await ctx.options.cache?.put(repo.path, ctx.manifest!).catch(() => {})
          report.output(`backup ${ctx.id} complete`)
        },
        title: 'Publish',
      },
    ],
  }
}

/**
 * Refuses (exit 2), before anything is created, a repository that overlaps the data directory
 * (every backup would hold the ones before it, or a backup would read itself), and a clone or
 * online folder inside it; a --clone-dir must be an existing directory.
 */
async function checkPaths(options: BackupOptions): Promise<void> {
  const {dataDir, repoPath} = options
  const repo = await overlap(repoPath, dataDir)
  if (repo) {
    throw usageError(
      repo === 'same'
        ? `repository ${repoPath} is the data directory itself`
        : repo === 'inside'
          ? `repository ${repoPath} is inside the data directory ${dataDir}: every backup would hold the ones before it`
          : `data directory ${dataDir} is inside the repository ${repoPath}: backups would read the repository`,
      'keep the repository outside the data directory: pass --path with another directory (e.g. /backups/mo)',
    )
  }

  for (const [flag, dir] of [
    ['--clone-dir', options.cloneDir],
    ['--online-dir', options.onlineDir],
  ] as const) {
    // eslint-disable-next-line no-await-in-loop -- two paths at most
    if (dir && ['inside', 'same'].includes((await overlap(dir, dataDir)) ?? '')) {
      throw usageError(
        `${flag} ${dir} is inside the data directory ${dataDir}: the copy would land in what it copies`,
        `pass ${flag} with a directory outside the data directory`,
      )
    }
  }

  if (options.cloneDir && options.clone) {
    const info = await stat(options.cloneDir).catch((error: NodeJS.ErrnoException) => error)
    if (info instanceof Error && info.code === 'ENOENT') {
      throw usageError(
        `clone directory ${options.cloneDir} does not exist`,
        "create it (on the data directory's filesystem, where reflinks work), or pass another --clone-dir",
      )
    }

    if (!(info instanceof Error) && !info.isDirectory())
      throw usageError(`clone directory ${options.cloneDir} is not a directory`, 'pass --clone-dir with a directory')
  }
}

/**
 * A cold backup that stops nothing reads whatever the running service is writing: not a
 * consistent copy. Refused (exit 2) while something answers SQL, unless --allow-running.
 */
async function checkNotRunning(options: BackupOptions): Promise<void> {
  if (options.mode !== 'cold' || options.service || !(await options.isRunning?.())) return
  const where = options.sql ? ` on ${options.sql.host}:${options.sql.port}` : ''
  if (options.allowRunning) {
    options.onWarning?.(
      `something answers SQL${where}: backing up a running service (--allow-running); files that change while read fail the backup, and the copy may not be consistent`,
    )
    return
  }

  throw usageError(
    `something answers SQL${where}: a cold backup of a running service is not a consistent copy`,
    'let backup stop and start it: --service mo_ctl, --service systemd, or --service command --stop-cmd … --start-cmd …',
    "or back up while it runs with --mode online (MatrixOne's own BACKUP)",
    'or pass --allow-running if you know the files do not change (e.g. a paused or read-only service)',
  )
}

/**
 * A signing writer builds only on what it signed itself: an incremental on a forged or unsigned
 * base could not be restored by readers that require signatures.
 */
function checkBaseSigner(base: BackupRecord, signing: SigningKey): void {
  const state = signatureState(base)
  if (state === 'invalid') {
    throw integrityError(
      `base ${base.id}: its signature does not match its backup.json: the record was changed after it was written`,
      'take --type full, and find out who changed the repository',
    )
  }

  if (state === 'unsigned' || base.signature!.signer !== signing.signer) {
    throw usageError(
      `base ${base.id} is ${state === 'unsigned' ? 'not signed' : `signed by ${base.signature!.signer}`}, not by this writer key (${signing.signer})`,
      'take --type full with this writer key, or pass --base with a backup it signed',
    )
  }
}

/** Releases the repository lock and the data dir's lock if this flow holds them; safe to call twice. */
export async function releaseLock(ctx: BackupContext, options: {keepDataDirLock?: boolean} = {}): Promise<void> {
  const {dataDirLock, unlock} = ctx
  ctx.unlock = undefined
  try {
    await unlock?.()
  } finally {
    if (!options.keepDataDirLock) {
      ctx.dataDirLock = undefined
      await dataDirLock?.release()
    }
  }
}

/**
 * The data dir's lock for a cold backup. A backup that only reads (no service to stop, no clone)
 * may run where it cannot write beside the data dir: then it warns and goes on without the lock.
 */
async function lockColdDataDir(ctx: BackupContext): Promise<DataDirLock | undefined> {
  const {options} = ctx
  const paths = await resolveDataDir(options.dataDir)
  // A data dir whose parent is missing is refused by the next step; never create it here.
  if (!(await stat(paths.parent).catch(() => null))) return undefined
  try {
    return await lockDataDir(options.dataDir, {backupId: ctx.id, command: 'br backup', onWarning: options.onWarning})
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

async function startService(ctx: BackupContext, signal: AbortSignal): Promise<void> {
  const service = ctx.options.service!
  await service.start(signal)
  ctx.stopped = false
  await service.waitReady(signal)
  await ctx.dataDirLock?.update({service: undefined})
  // Down from the stop command until it answers SQL again.
  if (ctx.serviceStoppedAt !== undefined) ctx.serviceDownMs = performance.now() - ctx.serviceStoppedAt
}

function draftRecord(
  ctx: BackupContext,
  result: {archiveSha256: string; archiveSize: number; manifest: Manifest},
): BackupRecord {
  const files = result.manifest.entries.filter((e) => e.type === 'file')
  const total = files.reduce((n, f) => n + f.size, 0)
  const archived = files.filter((f) => f.in === ctx.id).reduce((n, f) => n + f.size, 0)
  const {encrypt} = ctx.options
  return {
    archive: {
      compression: 'zstd',
      file: archiveFileName(encrypt),
      level: ctx.options.level,
      sha256: result.archiveSha256,
      size: result.archiveSize,
    },
    backupTs: ctx.mo?.backupTs ?? ctx.startedAt.toISOString(),
    base: ctx.base?.id ?? null,
    chain: result.manifest.chain,
    completedAt: '',
    counts: {
      dirs: result.manifest.entries.filter((e) => e.type === 'dir').length,
      files: files.length,
      symlinks: result.manifest.entries.filter((e) => e.type === 'symlink').length,
    },
    createdAt: ctx.startedAt.toISOString(),
    durationMs: 0,
    encryption: {
      passphrase: encrypt.type === 'passphrase',
      recipients: encrypt.type === 'recipients' ? encrypt.recipients : [],
      type: encrypt.type,
    },
    // Online backups pack MO's BACKUP folder: nothing of it is left out.
    excluded: ctx.options.mode === 'online' ? [] : ctx.options.exclude,
    format: RECORD_FORMAT,
    id: ctx.id,
    manifest: {file: '', plainSha256: '', sha256: '', size: 0},
    mode: ctx.options.mode,
    signature: null,
    sizes: {archived, total},
    source: {dataDir: ctx.options.dataDir, host: hostname(), serverVersion: ctx.mo?.serverVersion ?? null},
    tool: TOOL,
    type: ctx.options.type,
  }
}

export type BackupResult = BackupRecord & {
  /** --clone: what was cloned, and whether by reflink */
  clone: CloneResult | null
  /** from the stop command until the service answered SQL again (null: not managed) */
  serviceDownMs: null | number
}

export function backupResult(ctx: BackupContext): BackupResult {
  const clone = ctx.cloned ? {...ctx.cloned, ms: Math.round(ctx.cloned.ms)} : null
  return {
    ...ctx.record!,
    clone,
    serviceDownMs: ctx.serviceDownMs === undefined ? null : Math.round(ctx.serviceDownMs),
  }
}
