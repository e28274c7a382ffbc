/**
 * A recording fake of ServiceControl (src/lib/service/control.ts), the one seam the flow tests
 * fake: it records every stop, start, waitReady and listDatabases call with what the data
 * directory held at that moment, and a test's `hook` may fail any one call (throw), abort the
 * run, or change files before the call returns. Nothing else of ours is faked.
 */
import type {ServiceControl} from '../../src/lib/service/control.js'

import {treeHashes} from './tree.js'

export type ServiceCall = 'listDatabases' | 'start' | 'stop' | 'waitReady'

export interface RecordedCall {
  /** whether the signal the call got was already aborted */
  aborted: boolean
  call: ServiceCall
  /** the data dir's contents at the call, named by `trees` ('absent', or 'other' when none matched) */
  data: string
}

export class RecordingService implements ServiceControl {
  readonly calls: RecordedCall[] = []
  readonly describe = 'recording fake'
  /** runs at each call, after it was recorded: throw to fail the call; `n` counts calls of that kind from 1 */
  hook?: (call: ServiceCall, n: number, signal: AbortSignal) => Promise<void> | void
  readonly startHint = 'start it by hand (recording fake)'
  private readonly counts = new Map<ServiceCall, number>()

  /** `trees`: name → treeHashes of a data dir this test knows (the previous data, the backup's). */
  constructor(
    private readonly dataDir: string,
    private readonly trees: Record<string, Record<string, string>>,
  ) {}

  /** The calls as `call@data`, for one toEqual. */
  get summary(): string[] {
    return this.calls.map((c) => `${c.call}@${c.data}`)
  }

  async listDatabases(signal: AbortSignal): Promise<string[]> {
    await this.record('listDatabases', signal)
    return ['golden']
  }

  async start(signal: AbortSignal): Promise<void> {
    await this.record('start', signal)
  }

  async stop(signal: AbortSignal): Promise<void> {
    await this.record('stop', signal)
  }

  async waitReady(signal: AbortSignal): Promise<{elapsedMs: number; version: string}> {
    await this.record('waitReady', signal)
    return {elapsedMs: 1, version: 'fake 1.0'}
  }

  private async record(call: ServiceCall, signal: AbortSignal): Promise<void> {
    const n = (this.counts.get(call) ?? 0) + 1
    this.counts.set(call, n)
    this.calls.push({aborted: signal.aborted, call, data: await this.whatIsThere()})
    await this.hook?.(call, n, signal)
  }

  private async whatIsThere(): Promise<string> {
    let now: Record<string, string>
    try {
      now = await treeHashes(this.dataDir)
    } catch {
      return 'absent'
    }

    const json = JSON.stringify(now)
    return Object.entries(this.trees).find(([, tree]) => JSON.stringify(tree) === json)?.[0] ?? 'other'
  }
}
