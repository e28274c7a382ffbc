/**
 * The staged restore (DESIGN.md "Restore: never lose the data that is there"), as a script of
 * named steps:
 *
 *   0. lock the data directory (one run at a time: a second restore, or a cold backup of it,
 *      exits 4), handle what a dead run left (datadir-lock.ts) and remove its leftovers
 *   1. check the backup: record, archive object and size, manifest decrypted (a wrong key fails
 *      here, exit 3, before anything is written or stopped)
 *   2. check the target: refuse a non-empty target without --force; the old directory will be kept
 *   3. extract into a staging directory of this run beside the target (same filesystem, so the
 *      swap is a rename), hashing every file against the manifest and the ciphertext against the
 *      record; then seal it: its directory's identity, file count and bytes, and flush it to disk
 *      (durable.ts: one `sync -f`), so that what is swapped in survives a crash
 *   4. stop the service
 *   5. check the staged tree is still the sealed one (exit 3 and roll back if not), then swap:
 *      target → <target>.before-<id>, staging → target (two renames)
 *   6. start the service and wait until it answers SQL; list its databases
 *   7. only then, and only with --discard-old, delete the old directory
 *
 * Before step 1 nothing but the lock is written; every input is checked by the end of step 2
 * (keys that open this backup, a target apart from the repository, free space for staging), so a
 * bad one never stops the service. Filesystem errors on the paths the user gave are explained by
 * fs-errors.ts.
 *
 * Downtime is steps 4-6: seconds, whatever the size of the backup (plus the re-count of step 5).
 *
 * A symlinked data dir keeps its link: the directory it points to is the target, and staging
 * and <target>.before-<id> go beside that directory. The lock records each phase (the service
 * stopped and how to start it, the swap under way), so that the run after a crash says what
 * happened and where the previous data is.
 *
 * Guarantees: until step 5 the target is untouched; any failure after the stop puts the old
 * directory back in place and starts the service again; the old directory is never deleted
 * unless the restore succeeded and --discard-old was given; what is swapped in is the tree that
 * was verified (same directory, same number of files and bytes). It does not guarantee that the
 * restored service is healthy beyond answering SQL.
 */
import {randomBytes} from 'node:crypto'
import {lstat, mkdir, readdir, rename, rm, stat, statfs} from 'node:fs/promises'
import {basename, dirname, join, resolve} from 'node:path'
import {performance} from 'node:perf_hooks'

import type {Ids} from '../archive/owners.js'
import type {DecryptOptions, Manifest} from '../archive/types.js'
import type {RepoAddress} from '../repo/address.js'
import type {TrustPolicy} from '../repo/authenticity.js'
import type {BackupRecord} from '../repo/types.js'
import type {ServiceControl} from '../service/control.js'
import type {Flow, StepProgress} from '../steps.js'

import {decompressorName} from '../archive/zstd-parallel.js'
import {removeLeftovers} from '../cleanup.js'
import {type DataDirLock, lockDataDir, resolveDataDir} from '../datadir-lock.js'
import {BrError, integrityError, usageError} from '../errors.js'
import {formatBytes, formatDuration} from '../format.js'
import {explainingFsErrors, type FsErrorContext} from '../fs-errors.js'
import {readTargetConfig, targetLayout} from '../mo/config.js'
import {type BackupBackend, backupBackend, type LayoutMapping, layoutMapping, type TargetLayout} from '../mo/layout.js'
import {compareVersions, findMoService, moServiceBuild} from '../mo/version.js'
import {overlap} from '../path-overlap.js'
import {checkBackup} from '../repo/catalog.js'
import {fsyncPath} from '../repo/fs.js'
import {type Repository} from '../repo/repository.js'
import {readChainReporting} from './chain.js'
import {syncTree, TreeWriteBack} from './durable.js'
import {layOutOnline} from './online-layout.js'

export interface RestoreOptions {
  /** --chown, resolved (archive/owners.ts resolveChown): every file gets this owner */
  chown?: Ids
  dataDir: string
  decrypt: DecryptOptions
  discardOld: boolean
  force: boolean
  /** --force-version: restore into an older MatrixOne, or a cold backup into another SHARED backend */
  forceVersion?: boolean
  id: string
  /** a quick probe (SQL answers on host:port?) used when the service is not managed */
  isRunning?: () => Promise<boolean>
  /** keep setuid, setgid and sticky bits from the backup (--keep-special-modes); off, they are cleared */
  keepSpecialModes?: boolean
  /** --mo-config: the target MatrixOne's etc/launch (default: etc/launch beside the data dir) */
  moConfig?: string
  /** --mo-service: the target's mo-service binary, run with -version (default: <install dir>/mo-service) */
  moService?: string
  /** told what a dead run of this data dir left, and what was done about it */
  onWarning?: (message: string) => void
  /** zstd decompression threads (--parallelism); default: the cores here less one, 1-2 (defaultDecompressThreads) */
  parallelism?: number
  /** the repository: a local directory (absolute) or an S3 location with its settings */
  repo: RepoAddress
  /** null: not managed; then `isRunning` must say no before anything is swapped */
  service: null | ServiceControl
  /** --dn_config_path: the target's TN config */
  tnConfig?: string
  /** which backups the reader accepts (repo/authenticity.ts) */
  trust: TrustPolicy
  /** bytes written between two background flushes of the staged tree (durable.ts); tests set it small */
  writeBackBytes?: number
}

export interface RestoreContext {
  /** the online backup's framing (from its sidecars) */
  backupBackend?: BackupBackend
  databases?: string[]
  downtimeMs?: number
  /** where the target MatrixOne reads SHARED and hk_data (online backups) */
  layout?: TargetLayout
  /** the data dir's lock, once held */
  lock?: DataDirLock
  manifest?: Manifest
  members?: BackupRecord[]
  /** where the previous data directory is kept (undefined when there was none) */
  oldDir?: string
  options: RestoreOptions
  record?: BackupRecord
  repo?: Repository
  /** more directories of ours beside the target, removed by the rollback */
  scratch: string[]
  serverVersion?: string
  staging?: string
  /** the phase reached, so the rollback knows what to undo */
  state: {extracted: boolean; started: boolean; stopped: boolean; stoppedAt?: number; swapped: boolean}
  /** where the data directory really is: the directory a symlinked data dir points to */
  target?: string
  /** the staged tree as verified: checked again just before the swap */
  verified?: TreeSeal
  /** why a background flush of the staged tree failed: its final flush goes file by file */
  writeBackFailure?: string
}

export function newRestoreContext(options: RestoreOptions): RestoreContext {
  return {options, scratch: [], state: {extracted: false, started: false, stopped: false, swapped: false}}
}

/** The checks that come before anything is written or stopped: the real restore's first steps, and all of --dry-run. */
const checkSteps: Flow<RestoreContext>['steps'] = [
  {
    async run(ctx, report) {
      const {options} = ctx
      const {manifest, members, record, repo} = await checkBackup(options.repo, options.id, options.decrypt, {
        dataDir: options.dataDir,
        onWarning: options.onWarning,
        trust: options.trust,
      })
      Object.assign(ctx, {manifest, members, record, repo})
      await ctx.lock?.update({backupId: record.id})
      report.output(
        `${record.id}: ${record.counts.files} files, ${formatBytes(record.sizes.total)}, taken ${record.createdAt}`,
      )
    },
    title: 'Check backup',
  },
  {
    async run(ctx, report) {
      const {options} = ctx
      const config = await readTargetConfig({
        dataDir: options.dataDir,
        moConfig: options.moConfig,
        tnConfig: options.tnConfig,
      })
      ctx.layout = targetLayout(config, options.dataDir)
      ctx.backupBackend = backupBackend(ctx.manifest!.entries.flatMap((e) => (e.type === 'file' ? [e] : [])))
      for (const note of config.notes) report.output(note)
      report.output(`SHARED: ${config.shared.backend} in ${config.shared.dir} (${config.shared.from})`)
      for (const line of describeMapping(layoutMapping(ctx.layout, ctx.backupBackend))) report.output(line)
    },
    skip: (ctx) => (ctx.record!.mode === 'online' ? false : 'a cold backup is the data directory as it was'),
    title: 'Read the target MatrixOne config',
  },
  {
    run: async (ctx, report) => checkVersions(ctx, report),
    title: 'Check MatrixOne versions',
  },
  {
    async run(ctx, report) {
      if (!ctx.options.service && (await ctx.options.isRunning?.())) {
        throw usageError(
          `the service still answers SQL: refusing to replace ${ctx.options.dataDir} under a running server`,
          'stop it first, or pass --service command --stop-cmd … --start-cmd … to let restore stop and start it',
        )
      }

      ctx.target ??= (await resolveDataDir(ctx.options.dataDir)).real
      await checkApart(ctx.options.repo, ctx.options.dataDir)
      ctx.oldDir = await checkTarget(ctx)
      await checkFreeSpace(ctx.options.dataDir, ctx.record!)
      report.output(
        ctx.oldDir ? `the current directory will be kept as ${ctx.oldDir}` : `${ctx.options.dataDir} will be created`,
      )
    },
    title: 'Check target',
  },
]

/** The checks of a restore, without the restore: what `restore --dry-run` runs. */
export function restoreCheckFlow(): Flow<RestoreContext> {
  return explainingFsErrors({steps: checkSteps}, fsErrorContext)
}

/** The paths of a restore, for fs-errors.ts; ENOSPC needs the backup's size. */
function fsErrorContext(ctx: RestoreContext): FsErrorContext {
  const {dataDir, repo} = ctx.options
  const target = ctx.target ?? dataDir
  return {
    needed: ctx.record?.sizes.total,
    neededWhat: "the backup's files",
    paths: [
      ...(repo.s3 ? [] : [{flag: '--path', path: repo.location, role: 'repository'}]),
      {flag: '--data-dir', path: dataDir, role: 'restore target'},
      {flag: '--data-dir', path: target, role: 'restore target'},
      {flag: '--data-dir', path: dirname(target), role: 'the directory that holds the restore target'},
      ...ctx.scratch.map((path) => ({flag: '--data-dir', path, role: 'staging directory'})),
      ...(ctx.staging ? [{flag: '--data-dir', path: ctx.staging, role: 'staging directory'}] : []),
    ],
    writing:
      ctx.staging && !ctx.state.swapped
        ? {flag: '--data-dir', path: ctx.staging, role: 'staging directory'}
        : undefined,
  }
}

/**
 * Refuses (exit 2) a restore into an older MatrixOne than the backup's, and a cold backup into a
 * target whose SHARED backend differs (a cold backup is mo-data as it was: nothing converts it);
 * --force-version overrides, saying what it overrode. What cannot be known (no version recorded,
 * no mo-service to ask, no config beside a cold target) is said and not checked: the operator may
 * restore before installing MO, and a warning says what to check by hand.
 */
async function checkVersions(ctx: RestoreContext, report: {output(line: string): void}): Promise<void> {
  const {options} = ctx
  const source = ctx.record!.source.mo
  const refuse = (problem: string) => {
    if (options.forceVersion) {
      report.output(`--force-version: ${problem}; restoring anyway`)
      return
    }

    throw usageError(
      `${problem}: refusing to restore`,
      'restore into a MatrixOne of the same or a newer version with the same SHARED backend, or pass --force-version if you know it reads this data',
    )
  }

  if (ctx.record!.mode === 'cold' && source?.sharedBackend) {
    const config = await readTargetConfig({
      dataDir: options.dataDir,
      moConfig: options.moConfig,
      tnConfig: options.tnConfig,
    }).catch(() => null)
    if (config && config.shared.backend !== source.sharedBackend) {
      refuse(
        `the cold backup holds SHARED as ${source.sharedBackend}, the target reads ${config.shared.backend} (${config.shared.from}); a cold backup is not converted`,
      )
    }
  }

  const binary = options.moService ?? (await findMoService(dirname(resolve(options.dataDir))))
  const target = binary ? await moServiceBuild(binary) : 'no mo-service beside the data dir (pass --mo-service PATH)'
  if (!source?.version) {
    report.output('the backup records no MatrixOne version: not checked')
    return
  }

  if (typeof target === 'string') {
    options.onWarning?.(
      `target MatrixOne version unknown (${target}): restoring a ${source.version} backup unchecked; it needs the same or a newer MatrixOne`,
    )
    return
  }

  const order = compareVersions(target.version ?? '', source.version)
  if (order === -1)
    refuse(`the backup is from MatrixOne ${source.version}, the target ${binary} is older (${target.version})`)
  else if (order === null)
    options.onWarning?.(`cannot compare MatrixOne versions ${source.version} and ${target.version}: not checked`)
  else
    report.output(
      `backup from MatrixOne ${source.version}, target ${target.version} (${binary}): ${order === 0 ? 'the same' : 'newer'}`,
    )
}

/** One line per rule of a layout mapping. */
export function describeMapping(mapping: LayoutMapping[]): string[] {
  return mapping.map(
    (m) => `${m.from} -> ${m.to ?? '(left out)'}${m.to === null ? '' : `; conversion: ${m.conversion}`}`,
  )
}

export interface RestorePlan {
  bytes: number
  chain: string[]
  dataDir: string
  dryRun: true
  files: number
  /** free bytes on the target's filesystem */
  freeBytes: number
  id: string
  /** online: where the backup's files go, relative to the data dir, and how they are converted */
  layout: LayoutMapping[] | null
  /** where the current directory would be kept (null: the target is missing or empty) */
  previousDataDir: null | string
  /** the service controller, or null when not managed (--service none) */
  service: null | string
  staging: string
  /** what the restore would do, in order, for people */
  steps: string[]
  type: BackupRecord['type']
}

/** What a restore would do, after restoreCheckFlow() passed. `readiness` says how SQL readiness is checked. */
export async function restorePlan(ctx: RestoreContext, readiness: string): Promise<RestorePlan> {
  const record = ctx.record!
  const target = ctx.target!
  const staging = stagingDir(target, record.id)
  const {service} = ctx.options
  const free = await freeBytes(dirname(target))
  const steps = [
    `extract ${record.counts.files} files (${formatBytes(record.sizes.total)}, ${formatBytes(free)} free) from ${record.chain.length === 1 ? 'one archive' : `a chain of ${record.chain.length} archives`} into ${staging}, verifying every SHA-256`,
    ...(record.mode === 'online' && ctx.layout && ctx.backupBackend
      ? [
          `lay the files out as the target MatrixOne reads them: ${describeMapping(layoutMapping(ctx.layout, ctx.backupBackend)).join('; ')}`,
        ]
      : []),
    service
      ? `stop the service (${service.describe})`
      : 'leave the service alone (--service none): nothing may run on the target',
    ctx.oldDir ? `move ${target} to ${ctx.oldDir}, then ${staging} to ${target}` : `move ${staging} to ${target}`,
    ...(service ? [`start the service and wait for ${readiness}, then list its databases`] : []),
    ctx.oldDir
      ? ctx.options.discardOld
        ? `delete ${ctx.oldDir} once the service answers SQL (--discard-old)`
        : `keep the previous data in ${ctx.oldDir}`
      : 'no previous data to keep',
  ]
  return {
    bytes: record.sizes.total,
    chain: record.chain,
    dataDir: target,
    dryRun: true,
    files: record.counts.files,
    freeBytes: free,
    id: record.id,
    layout: ctx.layout && ctx.backupBackend ? layoutMapping(ctx.layout, ctx.backupBackend) : null,
    previousDataDir: ctx.oldDir ?? null,
    service: service ? service.describe : null,
    staging,
    steps,
    type: record.type,
  }
}

export function restoreFlow(): Flow<RestoreContext> {
  return explainingFsErrors(flow(), fsErrorContext)
}

function flow(): Flow<RestoreContext> {
  return {
    rollback,
    steps: [
      {
        async run(ctx, report) {
          ctx.lock = await lockDataDir(ctx.options.dataDir, {command: 'br restore', onWarning: ctx.options.onWarning})
          ctx.target = ctx.lock.paths.real
          // We hold the lock: whatever a run left beside the data dir, its owner is dead.
          const {notes} = await removeLeftovers(ctx.lock)
          for (const line of notes) report.output(line)
          report.output(
            ctx.target === ctx.lock.paths.given
              ? `${ctx.lock.paths.lock}`
              : `${ctx.lock.paths.lock} (${ctx.lock.paths.given} is a symlink to ${ctx.target}: the link is kept)`,
          )
        },
        title: 'Lock the data directory',
      },
      ...checkSteps,
      {
        async run(ctx, report, signal) {
          const record = ctx.record!
          const target = ctx.target!
          // Unique per run: nothing of another run's is ever removed or swapped in by this one.
          ctx.staging = stagingDir(target, record.id)
          await ctx.lock?.update({scratch: [ctx.staging, `${ctx.staging}.mo-data`]})
          await mkdir(dirname(target), {recursive: true})
          await mkdir(ctx.staging, {mode: 0o700})
          // The flush starts while the tree is written; the step after it finds little left.
          const writeBack = new TreeWriteBack(ctx.staging, {every: ctx.options.writeBackBytes, signal})
          const progress = (p: StepProgress) => {
            writeBack.written(p.bytesDone)
            report.progress(p)
          }

          try {
            await readChainReporting(
              {
                chown: ctx.options.chown,
                dest: ctx.staging,
                finalManifest: ctx.manifest!,
                keepSpecialModes: ctx.options.keepSpecialModes,
                keys: ctx.options.decrypt,
                members: ctx.members!,
                onWarning: ctx.options.onWarning,
                parallelism: ctx.options.parallelism,
                repo: ctx.repo!,
                signal,
              },
              {output: (line) => report.output(line), progress},
            )
          } catch (error) {
            await writeBack.settle(true)
            throw error
          }

          await writeBack.settle()
          ctx.writeBackFailure = writeBack.failure
          ctx.state.extracted = true
          if (ctx.record!.mode !== 'online') ctx.verified = await sealTree(ctx.staging, signal)
        },
        title: 'Extract and verify',
      },
      {
        async run(ctx, report, signal) {
          const raw = ctx.staging!
          const laid = `${raw}.mo-data`
          ctx.scratch.push(laid)
          await rm(laid, {force: true, recursive: true})
          const {converted, moved, skipped} = await layOutOnline(raw, laid, ctx.manifest!, {layout: ctx.layout, signal})
          await rm(raw, {force: true, recursive: true})
          ctx.staging = laid
          ctx.verified = await sealTree(laid, signal)
          report.output(
            `${moved} files moved${converted > 0 ? `, ${converted} converted (${ctx.backupBackend === 'DISK' ? 'CRC frames stripped' : 'CRC frames added'})` : ''} into the target's layout; ${skipped} files of the backup's own metadata left out`,
          )
        },
        skip: (ctx) => (ctx.record!.mode === 'online' ? false : 'a cold backup is the data directory as it was'),
        title: 'Lay out the online backup as mo-data',
      },
      {
        async run(ctx, report, signal) {
          // Before the stop, so the flush is not downtime; the swap then puts in place a tree on disk.
          const how = await syncTree(ctx.staging!, signal, {perFile: ctx.writeBackFailure !== undefined})
          const failed = ctx.writeBackFailure ? ` (a flush while extracting failed: ${ctx.writeBackFailure})` : ''
          report.output(
            how === 'syncfs'
              ? 'one syncfs of its filesystem (sync -f)'
              : `an fsync of every file and directory${failed}`,
          )
        },
        title: 'Flush the staged tree to disk',
      },
      {
        async run(ctx, report, signal) {
          const service = ctx.options.service!
          // Before the stop: a run killed during a slow stop leaves the service down too.
          await ctx.lock?.update({service: {describe: service.describe, start: service.startHint ?? service.describe}})
          report.output(service.describe)
          ctx.state.stoppedAt = performance.now()
          await service.stop(signal)
          ctx.state.stopped = true
        },
        skip: (ctx) => (ctx.options.service ? false : 'not managed (--service none)'),
        title: 'Stop service',
      },
      {
        async run(ctx, report, signal) {
          const target = ctx.target!
          const staging = ctx.staging!
          // The tree about to be swapped in must be the one verified: not replaced, not thinned.
          const now = await sealTree(staging, signal).catch(() => null)
          const was = ctx.verified!
          if (
            !now ||
            now.dev !== was.dev ||
            now.ino !== was.ino ||
            now.files !== was.files ||
            now.bytes !== was.bytes
          ) {
            throw integrityError(
              `the staged tree ${staging} is not the one verified (${was.files} files, ${formatBytes(was.bytes)}; now ${now ? `${now.files} files, ${formatBytes(now.bytes)}${now.ino === was.ino ? '' : ', another directory'}` : 'gone'}): refusing to swap it in`,
              'something else writes beside the data directory: find it, then restore again; the previous data was left in place',
            )
          }

          await ctx.lock?.update({swap: {phase: 'swapping', previous: ctx.oldDir ?? null, staging}})
          if (ctx.oldDir) await rename(target, ctx.oldDir)
          try {
            await rename(staging, target)
          } catch (error) {
            if (ctx.oldDir) await rename(ctx.oldDir, target)
            await ctx.lock?.update({swap: undefined})
            throw error
          }

          ctx.state.swapped = true
          await ctx.lock?.update({scratch: [], swap: {phase: 'swapped', previous: ctx.oldDir ?? null, staging}})
          // The staged tree was flushed before the stop; the renames are made durable here, before
          // MO starts on the new tree (one directory holds the target, its staging and the previous
          // data). A failure rolls the swap back, as any failure after it does.
          await fsyncPath(dirname(target))
          report.output(ctx.oldDir ? `${target} ← restored; previous data in ${ctx.oldDir}` : `${target} ← restored`)
        },
        title: 'Swap in the restored directory',
      },
      {
        async run(ctx, report, signal) {
          const service = ctx.options.service!
          ctx.state.started = true
          await service.start(signal)
          const ready = await service.waitReady(signal)
          await ctx.lock?.update({service: undefined})
          ctx.downtimeMs = performance.now() - (ctx.state.stoppedAt ?? performance.now())
          ctx.serverVersion = ready.version
          ctx.databases = await service.listDatabases(signal)
          report.output(
            `answers SQL (${ready.version}) after ${formatDuration(ready.elapsedMs)}; ${ctx.databases.length} databases`,
          )
        },
        skip: (ctx) => (ctx.options.service ? false : 'not managed (--service none)'),
        title: 'Start service and wait for SQL',
      },
      {
        async run(ctx, report) {
          await rm(ctx.oldDir!, {force: true, recursive: true})
          report.output(`removed ${ctx.oldDir}`)
          ctx.oldDir = undefined
        },
        skip: (ctx) => (ctx.options.discardOld && ctx.oldDir ? false : 'Keep the previous data directory'),
        title: 'Discard the previous data directory',
      },
      {
        async run(ctx, report) {
          await ctx.lock?.release()
          report.output(ctx.oldDir ? `previous data kept in ${ctx.oldDir}` : 'done')
        },
        title: 'Unlock the data directory',
      },
    ],
  }
}

/**
 * Records an undo in the data dir's lock, unless the lock is no longer ours (taken over: the run
 * stopped for that): the undo itself is done all the same, and the lock is its new holder's.
 */
async function recordUndo(lock: DataDirLock | undefined, change: Parameters<DataDirLock['update']>[0]): Promise<void> {
  if (!lock || lock.lost !== undefined) return
  await lock.update(change).catch((error: unknown) => {
    if (lock.lost === undefined) throw error
  })
}

/** Where a backup is extracted before the swap: beside the target, so the swap is a rename; unique per run. */
export function stagingDir(target: string, id: string): string {
  return join(dirname(target), `.${basename(target)}.restore-${id}-${randomBytes(4).toString('hex')}`)
}

/** What identifies a verified staged tree: its directory, and how many files and bytes it holds. */
export interface TreeSeal {
  bytes: number
  dev: number
  files: number
  ino: number
}

/** Counts the regular files and their bytes under `root` (symlinks not followed). */
export async function sealTree(root: string, signal?: AbortSignal): Promise<TreeSeal> {
  const top = await lstat(root)
  if (!top.isDirectory()) throw new Error(`${root} is not a directory`)
  const seal: TreeSeal = {bytes: 0, dev: top.dev, files: 0, ino: top.ino}
  const walk = async (dir: string): Promise<void> => {
    signal?.throwIfAborted()
    for (const entry of await readdir(dir, {withFileTypes: true})) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) {
        // eslint-disable-next-line no-await-in-loop -- depth first, one directory at a time
        await walk(path)
      } else if (entry.isFile()) {
        seal.files++
        // eslint-disable-next-line no-await-in-loop
        seal.bytes += (await lstat(path)).size
      }
    }
  }

  await walk(root)
  return seal
}

/** Free bytes on the filesystem that holds `path` (or its nearest existing ancestor). */
export async function freeBytes(path: string): Promise<number> {
  for (let dir = path; ; dir = dirname(dir)) {
    try {
      // eslint-disable-next-line no-await-in-loop -- walks up one directory at a time
      const fs = await statfs(dir)
      return fs.bavail * fs.bsize
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || dir === dirname(dir)) throw error
    }
  }
}

/** Refuses, before anything is extracted or stopped, a target whose filesystem cannot hold the backup. */
async function checkFreeSpace(target: string, record: BackupRecord): Promise<void> {
  const free = await freeBytes(dirname(target))
  if (free < record.sizes.total) {
    throw usageError(
      `not enough space to restore ${record.id} beside ${target}: it needs ${formatBytes(record.sizes.total)}, ${formatBytes(free)} free`,
      'free some space on that filesystem (the old data stays until the restore succeeded), or restore into --data-dir on another one',
    )
  }
}

/**
 * The target and the repository must be apart: a target inside the repository would be swapped
 * among its backups, and a repository inside the target would be moved aside with the old data
 * (and deleted with --discard-old). Staging goes beside the target, so it cannot hold either.
 */
async function checkApart(repo: RepoAddress, dataDir: string): Promise<void> {
  // An S3 repository cannot overlap a directory of this host.
  if (repo.s3) return
  const repoPath = repo.location
  const how = await overlap(dataDir, repoPath)
  if (!how) return
  throw usageError(
    how === 'same'
      ? `restore target ${dataDir} is the repository itself`
      : how === 'inside'
        ? `restore target ${dataDir} is inside the repository ${repoPath}`
        : `the repository ${repoPath} is inside the restore target ${dataDir}: the restore would move it aside with the old data`,
    'restore into a data directory outside the repository (--data-dir), and keep the repository outside it',
  )
}

async function checkTarget(ctx: RestoreContext): Promise<string | undefined> {
  const target = ctx.target!
  let entries: string[]
  try {
    const info = await stat(target)
    if (!info.isDirectory())
      throw usageError(`restore target ${target} is not a directory`, 'pass --data-dir with the path of mo-data')
    entries = await readdir(target)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }

  if (entries.length > 0 && !ctx.options.force) {
    throw usageError(
      `restore target ${target} is not empty`,
      `pass --force to replace it: the current data is kept as ${target}.before-${ctx.record!.id}`,
    )
  }

  const oldDir = `${target}.before-${ctx.record!.id}`
  if (await exists(oldDir)) {
    throw usageError(
      `${oldDir} already exists (kept by an earlier restore of this backup): it may be the only copy of the data it holds`,
      `move it elsewhere (e.g. \`mv ${oldDir} ${oldDir}.kept\`), then restore again`,
    )
  }

  return oldDir
}

/**
 * Undo what was done, in reverse: a started service is stopped again, the restored directory is
 * moved out of the way and the old one put back, the service is started on the old data, and the
 * staging directory is removed. Each undo is tried even if an earlier one failed; any failure is
 * reported together, with where the data is, since that is what the operator needs then.
 */
async function rollback(ctx: RestoreContext, _error: unknown, report: {output(line: string): void}): Promise<void> {
  const {signal} = new AbortController()
  const {service} = ctx.options
  const target = ctx.target ?? ctx.options.dataDir
  const problems: string[] = []
  const attempt = async (what: string, fn: () => Promise<void>) => {
    try {
      report.output(what)
      await fn()
    } catch (error) {
      problems.push(`${what}: ${(error as Error).message}`)
    }
  }

  if (ctx.state.started && service)
    await attempt('stopping the service started on the restored data', () => service.stop(signal))
  if (ctx.state.swapped) {
    await attempt(`putting the previous data back in ${target}`, async () => {
      await rename(target, ctx.staging!)
      if (ctx.oldDir) await rename(ctx.oldDir, target)
      ctx.state.swapped = false
      await recordUndo(ctx.lock, {swap: undefined})
    })
  }

  if (ctx.state.stopped && service && !ctx.state.swapped) {
    await attempt('starting the service again on the previous data', async () => {
      await service.start(signal)
      await service.waitReady(signal)
      await recordUndo(ctx.lock, {service: undefined})
    })
  }

  if (ctx.staging && !ctx.state.swapped)
    await attempt(`removing ${ctx.staging}`, () => rm(ctx.staging!, {force: true, recursive: true}))
  for (const dir of ctx.scratch) {
    // eslint-disable-next-line no-await-in-loop -- one undo after another, each reported
    if (dir !== ctx.staging) await attempt(`removing ${dir}`, () => rm(dir, {force: true, recursive: true}))
  }

  // A rollback that could not finish keeps the lock, with its state: the next run says what is where.
  // It is kept on purpose then: the file stays, its heartbeat stops.
  await (problems.length === 0 ? ctx.lock?.release() : ctx.lock?.keep())
  if (problems.length > 0) {
    const where = ctx.state.swapped
      ? `the restored data is in ${target}, the previous data in ${ctx.oldDir}`
      : `the previous data is in ${target}`
    throw new BrError('service', `rollback incomplete: ${problems.join('; ')} (${where})`, {
      suggestions: [
        'check the service by hand; the previous data was not deleted',
        `the next restore, backup or \`moctl br cleanup --data-dir ${ctx.options.dataDir}\` says again what is where`,
      ],
    })
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch {
    return false
  }
}

export interface RestoreResult {
  /** databases visible over SQL after the restart (managed service only) */
  databases: null | string[]
  dataDir: string
  /** the zstd decompression in use */
  decompressor: string
  downtimeMs: null | number
  files: number
  id: string
  previousDataDir: null | string
  serverVersion: null | string
}

export function restoreResult(ctx: RestoreContext): RestoreResult {
  return {
    databases: ctx.databases ?? null,
    dataDir: ctx.options.dataDir,
    decompressor: decompressorName(undefined, ctx.options.parallelism),
    downtimeMs: ctx.downtimeMs === undefined ? null : Math.round(ctx.downtimeMs),
    files: ctx.record!.counts.files,
    id: ctx.record!.id,
    previousDataDir: ctx.oldDir ?? null,
    serverVersion: ctx.serverVersion ?? null,
  }
}
