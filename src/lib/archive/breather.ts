/**
 * Long synchronous loops (a million chmods, a manifest check) let the event loop in: timers,
 * progress, and above all SIGINT, which must act within a fraction of a second.
 *
 * Guarantees: `breathe()` returns at once until about 50 ms of work have passed since the last
 * pause, then waits one turn of the event loop (setImmediate: I/O and signal handlers run) and
 * throws the interrupted BrError if `signal` was aborted meanwhile. Its cost per call is one clock
 * read. It does not make a single long call (JSON.parse of a huge manifest) interruptible.
 */
import {performance} from 'node:perf_hooks'
import {setImmediate as nextTurn} from 'node:timers/promises'

import {throwIfAborted} from '../errors.js'

const SLICE_MS = 50

export class Breather {
  private last = performance.now()

  constructor(private readonly signal?: AbortSignal) {}

  /** Call once per item of a long loop; await it only when it returns a promise. */
  breathe(): Promise<void> | undefined {
    if (performance.now() - this.last < SLICE_MS) return undefined
    return this.pause()
  }

  private async pause(): Promise<void> {
    await nextTurn()
    this.last = performance.now()
    throwIfAborted(this.signal)
  }
}
