/**
 * The cold source: the data directory itself, read while the service is stopped (DESIGN.md "Two
 * ways to take a backup"). Its steps: stop the service (when one is managed), scan the data dir
 * (less the excludes), plan an incremental against the base; after the pack, start the service.
 * clone.ts reuses these steps and starts the service before the pack instead.
 *
 * Guarantees: the data dir is only read; the data dir's lock records the stopped service and how
 * to start it before the stop command runs, so a run killed during a slow stop still says so; a
 * stopped service is in the trail (restart) from the stop until its start command returned, so
 * the rollback starts it again. Not: a check that the service really stopped (--service none
 * vouches for it; a file that changes while read fails the backup loudly).
 */
import {performance} from 'node:perf_hooks'

import type {DataDirLock} from '../../datadir-lock.js'
import type {ServiceControl} from '../../service/control.js'
import type {BackupOptions, BackupTrail, Opened, Packed, Packing, Taken} from '../types.js'

import {scanDataDir} from '../../archive/walk.js'
import {formatBytes, formatDuration} from '../../format.js'
import {type Script, type ScriptStep} from '../../steps.js'
import {type IncrementalPlan, planIncremental} from '../plan.js'
import {PLAN, SCAN, type Source} from './types.js'

export function coldSource(options: BackupOptions): Source {
  const {service} = options
  return {
    afterPack: (script) => (service ? script.step(START, startServiceStep(service)) : script),
    excluded: options.exclude,
    readsDataDir: true,
    take: (script) => coldSteps(script, options),
  }
}

/** Stop, scan and plan: what the data dir holds to pack, with the service down (if managed). */
export function coldSteps(script: Script<BackupTrail, Opened>, options: BackupOptions): Script<BackupTrail, Taken> {
  const {service} = options
  const stopped = service ? script.step('Stop service', stopServiceStep(service)) : script
  return stopped
    .step(SCAN, async (_input, trail, report, signal) => {
      const entries = await scanDataDir(options.dataDir, {exclude: options.exclude, signal})
      const files = entries.filter((e) => e.type === 'file')
      const bytes = files.reduce((n, f) => n + f.size, 0)
      trail.needed = {bytes, what: PACK_WHAT}
      report.output(`${files.length} files, ${formatBytes(bytes)}`)
      const packing: Packing = {entries, plan: null, async release() {}, root: options.dataDir}
      return {packing}
    })
    .stepIf(options.type === 'incremental', PLAN, async (input, trail, report, signal) => {
      const base = baseOf(input)
      const plan = await planIncremental(input.packing.entries, base.manifest, {
        checksum: options.checksum,
        root: options.dataDir,
        signal,
      })
      trail.needed = {bytes: plan.changedBytes, what: PACK_WHAT}
      report.output(planSummary(plan, options))
      return {packing: {...input.packing, entries: plan.toPack, plan}}
    })
}

/** What a plan step says it decided. */
export function planSummary(plan: IncrementalPlan, options: BackupOptions): string {
  const changed = plan.toPack.filter((e) => e.type === 'file').length
  return (
    `${changed} new or changed files (${formatBytes(plan.changedBytes)}${plan.grown > 0 ? `, of which ${plan.grown} grown: their new bytes, if they begin as before` : ''}), ${plan.unchanged.length} unchanged, ${plan.deleted.length} deleted` +
    (options.checksum ? `; ${plan.reread} files re-read for --checksum` : '')
  )
}

/** What fs-errors.ts says an ENOSPC needed room for while packing. */
export const PACK_WHAT = 'the files to pack, before compression'

/** The base an incremental's step plans against; only incrementals have these steps. */
export function baseOf(input: Opened): NonNullable<Opened['base']> {
  if (!input.base) throw new Error('an incremental step ran without a base')
  return input.base
}

export const START = 'Start service'

function stopServiceStep(service: ServiceControl): ScriptStep<BackupTrail, Opened, void> {
  return async (input, trail, report, signal) => {
    // Before the stop: a run killed during a slow stop leaves the service down too.
    await input.dataDirLock?.update({
      service: {describe: service.describe, start: service.startHint ?? service.describe},
    })
    report.output(service.describe)
    const stoppedAt = performance.now()
    await service.stop(signal)
    trail.restart = (again) => startService(service, input.dataDirLock, trail, again).then(() => {})
    trail.stoppedAt = stoppedAt
  }
}

/** Starts the service the stop step stopped; the output is how long it was down. */
export function startServiceStep(
  service: ServiceControl,
): ScriptStep<BackupTrail, Taken, Pick<Packed, 'serviceDownMs'>> {
  return async (input, trail, report, signal) => {
    const serviceDownMs = await startService(service, input.dataDirLock, trail, signal)
    report.output(`service down for ${formatDuration(serviceDownMs)}`)
    return {serviceDownMs}
  }
}

/** Start, then wait until it answers SQL; the ms since the stop began, or 0 when it was not stopped. */
async function startService(
  service: ServiceControl,
  lock: DataDirLock | undefined,
  trail: BackupTrail,
  signal: AbortSignal,
): Promise<number> {
  await service.start(signal)
  // Started: a failure from here on (not ready in time) is not a service left down by us.
  trail.restart = undefined
  await service.waitReady(signal)
  await lock?.update({service: undefined})
  // Down from the stop command until it answers SQL again.
  return trail.stoppedAt === undefined ? 0 : performance.now() - trail.stoppedAt
}
