/**
 * A RepoBackend that keeps some objects under retention, as an S3 bucket with Object Lock does:
 * for tests of what prune and delete do with backups the store will not let go. Every call goes to
 * a real FsBackend (real files underneath); this wrapper stands in for the store's retention only.
 * `stat` reports `retainUntilMs` for the keys marked with `retain`, and `remove`/`removePrefix`
 * refuse them with ERETAINED (backend.ts RETAINED) while the date is ahead. `removePrefix` removes
 * the other objects under the prefix first, as S3's DeleteObjects does (each key on its own):
 * the harsher case, so a test sees it if a caller relies on the refusal alone.
 * `hideRetention` makes `stat` stop telling (a store whose retention the backend cannot read): then
 * only the refusal says it.
 */
import type {Readable} from 'node:stream'

import {type LoadOptions, type ObjectInfo, type RepoBackend, RETAINED} from '../../src/lib/repo/backend.js'
import {FsBackend} from '../../src/lib/repo/fs.js'

export class RetainingBackend implements RepoBackend {
  /** stat reports no retention (the refusal still comes) */
  hideRetention = false
  readonly inner: FsBackend
  /** key prefix → retained until (ms) */
  private readonly held = new Map<string, number>()

  constructor(readonly location: string) {
    this.inner = new FsBackend(location)
  }

  connect() {
    return this.inner.connect()
  }

  createExclusive(key: string, bytes: Uint8Array) {
    return this.inner.createExclusive(key, bytes)
  }

  describe() {
    return `${this.inner.describe()} (with retention)`
  }

  list(prefix: string) {
    return this.inner.list(prefix)
  }

  listLeftovers(prefix: string) {
    return this.inner.listLeftovers(prefix)
  }

  load(key: string, options?: LoadOptions) {
    return this.inner.load(key, options)
  }

  open(key: string, options?: {offset?: number; signal?: AbortSignal}): Readable {
    return this.inner.open(key, options)
  }

  async remove(key: string): Promise<void> {
    const until = this.until(key)
    if (until !== undefined) throw retainedError(key, until)
    await this.inner.remove(key)
  }

  removeIf(key: string, expected: Uint8Array) {
    return this.inner.removeIf(key, expected)
  }

  async removePrefix(prefix: string): Promise<void> {
    const objects = await this.inner.list(prefix)
    const kept = objects.filter((o) => this.until(o.key) !== undefined)
    if (kept.length === 0) {
      await this.inner.removePrefix(prefix)
      return
    }

    for (const o of objects) {
      if (!kept.includes(o)) await this.inner.remove(o.key)
    }

    throw retainedError(kept[0].key, Math.max(...kept.map((o) => this.until(o.key)!)))
  }

  /** Every object whose key starts with `prefix` is retained until `untilMs`. */
  retain(prefix: string, untilMs: number): void {
    this.held.set(prefix, untilMs)
  }

  save(key: string, source: Readable | Uint8Array, options?: {signal?: AbortSignal}) {
    return this.inner.save(key, source, options)
  }

  async stat(key: string): Promise<null | ObjectInfo> {
    const info = await this.inner.stat(key)
    const until = this.until(key)
    if (!info || until === undefined || this.hideRetention) return info
    return {...info, retainUntilMs: until}
  }

  private until(key: string): number | undefined {
    const now = Date.now()
    const dates = [...this.held].filter(([prefix, until]) => key.startsWith(prefix) && until > now).map(([, u]) => u)
    return dates.length > 0 ? Math.max(...dates) : undefined
  }
}

function retainedError(key: string, until: number): Error {
  return Object.assign(new Error(`${key} is under object lock until ${new Date(until).toISOString()}`), {
    code: RETAINED,
    retainUntilMs: until,
  })
}
