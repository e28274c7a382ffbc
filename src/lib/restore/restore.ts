/**
 * The staged restore (DESIGN.md "Restore: never lose the data that is there"), as a script of
 * named steps:
 *
 *   1. check the backup: record, archive object and size, manifest decrypted (a wrong key fails
 *      here, exit 3, before anything is written or stopped)
 *   2. check the target: refuse a non-empty target without --force; the old directory will be kept
 *   3. extract into a staging directory beside the target (same filesystem, so the swap is a
 *      rename), hashing every file against the manifest and the ciphertext against the record
 *   4. stop the service
 *   5. swap: target → <target>.before-<id>, staging → target (two renames)
 *   6. start the service and wait until it answers SQL; list its databases
 *   7. only then, and only with --discard-old, delete the old directory
 *
 * Downtime is steps 4-6: seconds, whatever the size of the backup.
 *
 * Guarantees: until step 5 the target is untouched; any failure after the stop puts the old
 * directory back in place and starts the service again; the old directory is never deleted
 * unless the restore succeeded and --discard-old was given. It does not guarantee that the
 * restored service is healthy beyond answering SQL.
 */
import {mkdir, readdir, rename, rm, stat, statfs} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'
import {performance} from 'node:perf_hooks'

import type {DecryptOptions, Manifest} from '../archive/types.js'
import type {BackupRecord} from '../repo/types.js'
import type {ServiceControl} from '../service/control.js'
import type {Flow} from '../steps.js'

import {BrError, usageError} from '../errors.js'
import {formatBytes, formatDuration} from '../format.js'
import {type Repository} from '../repo/repository.js'
import {readChainReporting} from './chain.js'
import {checkBackup} from './check.js'
import {layOutOnline} from './online-layout.js'

export interface RestoreOptions {
  dataDir: string
  decrypt: DecryptOptions
  discardOld: boolean
  force: boolean
  id: string
  /** a quick probe (SQL answers on host:port?) used when the service is not managed */
  isRunning?: () => Promise<boolean>
  /** keep setuid, setgid and sticky bits from the backup (--keep-special-modes); off, they are cleared */
  keepSpecialModes?: boolean
  repoPath: string
  /** null: not managed; then `isRunning` must say no before anything is swapped */
  service: null | ServiceControl
}

export interface RestoreContext {
  databases?: string[]
  downtimeMs?: number
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
}

export function newRestoreContext(options: RestoreOptions): RestoreContext {
  return {options, scratch: [], state: {extracted: false, started: false, stopped: false, swapped: false}}
}

/** The checks that come before anything is written or stopped: the real restore's first steps, and all of --dry-run. */
const checkSteps: Flow<RestoreContext>['steps'] = [
  {
    async run(ctx, report) {
      const {manifest, members, record, repo} = await checkBackup(
        ctx.options.repoPath,
        ctx.options.id,
        ctx.options.decrypt,
      )
      Object.assign(ctx, {manifest, members, record, repo})
      report.output(
        `${record.id}: ${record.counts.files} files, ${formatBytes(record.sizes.total)}, taken ${record.createdAt}`,
      )
    },
    title: 'Check backup',
  },
  {
    async run(ctx, report) {
      if (!ctx.options.service && (await ctx.options.isRunning?.())) {
        throw usageError(
          `the service still answers SQL: refusing to replace ${ctx.options.dataDir} under a running server`,
          'stop it first, or pass --service command --stop-cmd … --start-cmd … to let restore stop and start it',
        )
      }

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
  return {steps: checkSteps}
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
  const target = ctx.options.dataDir
  const staging = stagingDir(target, record.id)
  const {service} = ctx.options
  const free = await freeBytes(dirname(target))
  const steps = [
    `extract ${record.counts.files} files (${formatBytes(record.sizes.total)}, ${formatBytes(free)} free) from ${record.chain.length === 1 ? 'one archive' : `a chain of ${record.chain.length} archives`} into ${staging}, verifying every SHA-256`,
    ...(record.mode === 'online'
      ? ['lay the files out as mo_br restore does: objects, ckp/ and gc/ into shared/, hk_data into local/']
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
    previousDataDir: ctx.oldDir ?? null,
    service: service ? service.describe : null,
    staging,
    steps,
    type: record.type,
  }
}

export function restoreFlow(): Flow<RestoreContext> {
  return {
    rollback,
    steps: [
      ...checkSteps,
      {
        async run(ctx, report, signal) {
          const record = ctx.record!
          const target = ctx.options.dataDir
          ctx.staging = stagingDir(target, record.id)
          await mkdir(dirname(target), {recursive: true})
          await rm(ctx.staging, {force: true, recursive: true})
          await mkdir(ctx.staging, {mode: 0o700, recursive: true})
          await readChainReporting(
            {
              dest: ctx.staging,
              finalManifest: ctx.manifest!,
              keepSpecialModes: ctx.options.keepSpecialModes,
              keys: ctx.options.decrypt,
              members: ctx.members!,
              repo: ctx.repo!,
              signal,
            },
            report,
          )
          ctx.state.extracted = true
        },
        title: 'Extract and verify',
      },
      {
        async run(ctx, report, signal) {
          const raw = ctx.staging!
          const laid = `${raw}.mo-data`
          ctx.scratch.push(laid)
          await rm(laid, {force: true, recursive: true})
          const {moved, skipped} = await layOutOnline(raw, laid, ctx.manifest!, signal)
          await rm(raw, {force: true, recursive: true})
          ctx.staging = laid
          report.output(
            `${moved} files into shared/ and local/ as mo_br restore lays them out; ${skipped} files of the backup's own metadata left out`,
          )
        },
        skip: (ctx) => (ctx.record!.mode === 'online' ? false : 'a cold backup is the data directory as it was'),
        title: 'Lay out the online backup as mo-data',
      },
      {
        async run(ctx, report, signal) {
          report.output(ctx.options.service!.describe)
          ctx.state.stoppedAt = performance.now()
          await ctx.options.service!.stop(signal)
          ctx.state.stopped = true
        },
        skip: (ctx) => (ctx.options.service ? false : 'not managed (--service none)'),
        title: 'Stop service',
      },
      {
        async run(ctx, report) {
          const target = ctx.options.dataDir
          if (ctx.oldDir) await rename(target, ctx.oldDir)
          try {
            await rename(ctx.staging!, target)
          } catch (error) {
            if (ctx.oldDir) await rename(ctx.oldDir, target)
            throw error
          }

          ctx.state.swapped = true
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
    ],
  }
}

/** Where a backup is extracted before the swap: beside the target, so the swap is a rename. */
export function stagingDir(target: string, id: string): string {
  return join(dirname(target), `.${basename(target)}.restore-${id}`)
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

async function checkTarget(ctx: RestoreContext): Promise<string | undefined> {
  const target = ctx.options.dataDir
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
      `${oldDir} already exists (kept by an earlier restore of this backup)`,
      'move or delete it, then restore again',
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
  const target = ctx.options.dataDir
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
    })
  }

  if (ctx.state.stopped && service && !ctx.state.swapped) {
    await attempt('starting the service again on the previous data', async () => {
      await service.start(signal)
      await service.waitReady(signal)
    })
  }

  if (ctx.staging && !ctx.state.swapped)
    await attempt(`removing ${ctx.staging}`, () => rm(ctx.staging!, {force: true, recursive: true}))
  for (const dir of ctx.scratch) {
    // eslint-disable-next-line no-await-in-loop -- one undo after another, each reported
    if (dir !== ctx.staging) await attempt(`removing ${dir}`, () => rm(dir, {force: true, recursive: true}))
  }

  if (problems.length > 0) {
    const where = ctx.state.swapped
      ? `the restored data is in ${target}, the previous data in ${ctx.oldDir}`
      : `the previous data is in ${target}`
    throw new BrError('service', `rollback incomplete: ${problems.join('; ')} (${where})`, {
      suggestions: ['check the service by hand; nothing was deleted'],
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
    downtimeMs: ctx.downtimeMs === undefined ? null : Math.round(ctx.downtimeMs),
    files: ctx.record!.counts.files,
    id: ctx.record!.id,
    previousDataDir: ctx.oldDir ?? null,
    serverVersion: ctx.serverVersion ?? null,
  }
}
