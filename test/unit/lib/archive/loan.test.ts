/**
 * Output buffers lent to a reader (loan.ts): one is filled again only once the reader is done
 * with every byte of it, in order of position; a detached one is never handed out; at most `keep`
 * wait; a reader that never says anything costs nothing beyond the tracking cap; a shared loan's
 * buffers are SharedArrayBuffers, handed out again as they are.
 */
import {MessageChannel} from 'node:worker_threads'
import {describe, expect, it} from 'vitest'

import {BufferLoan, sizeClass} from '../../../../src/lib/archive/loan.js'

const KiB = 1024
/** lendOne's mark, in the first 4 bytes: this, plus the buffer's name (1-255). */
const TAG = 0xa1_1c_e0_00

/** Lends a buffer of `size` bytes from `loan` as the next output, all of it used, its first byte `name`. */
function lendOne(loan: BufferLoan, size: number, name = 9): ArrayBufferLike {
  const buffer = loan.take(size)
  new DataView(buffer).setUint32(0, TAG + name)
  loan.pushed(new Uint8Array(buffer, 0, size), true)
  return buffer
}

/**
 * Takes a buffer of `size` from `loan`: the name lendOne gave it when it is one handed out again,
 * 0 for a new one (told by the loan's count: a new buffer may hold an old one's bytes, as malloc
 * reuses freed memory).
 */
function taken(loan: BufferLoan, size: number): number {
  const before = loan.reused
  const buffer = loan.take(size)
  if (loan.reused === before) return 0
  const word = new DataView(buffer).getUint32(0)
  return word - (word % 256) === TAG ? word % 256 : -1
}

describe('BufferLoan', () => {
  it('gives a buffer again only once the reader is done with its last byte', () => {
    const loan = new BufferLoan(4)
    // Each buffer marked with its name: one handed out again is detached, and read by content.
    const a = lendOne(loan, 100 * KiB, 1) // bytes 0 to 100 KiB
    const b = lendOne(loan, 100 * KiB, 2) // to 200 KiB
    expect(a.byteLength).toBe(sizeClass(100 * KiB))
    loan.doneWith(100 * KiB - 1)
    expect(taken(loan, 100 * KiB)).toBe(0) // a new one
    expect(a.byteLength).toBe(sizeClass(100 * KiB))
    loan.doneWith(100 * KiB)
    expect(taken(loan, 100 * KiB)).toBe(1)
    expect(a.byteLength).toBe(0)
    // Output that is not lent (the main thread's own) moves the position on, and is never handed out.
    loan.pushed(Buffer.alloc(10), false)
    lendOne(loan, 100 * KiB, 3) // from 200 KiB + 10 to 300 KiB + 10
    loan.doneWith(300 * KiB)
    expect(taken(loan, 100 * KiB)).toBe(2)
    expect(b.byteLength).toBe(0)
    expect(taken(loan, 100 * KiB)).toBe(0)
    loan.doneWith(300 * KiB + 10)
    expect(taken(loan, 100 * KiB)).toBe(3)
    expect(loan.reused).toBe(3)
  })

  it('detaches a buffer it hands out again: a view kept of it reads as empty, the memory is the same', () => {
    const loan = new BufferLoan(4)
    const first = lendOne(loan, 64 * KiB)
    const kept = new Uint8Array(first)
    kept.fill(7)
    loan.doneWith(64 * KiB)
    const again = loan.take(64 * KiB)
    expect(kept.length).toBe(0)
    expect(first.byteLength).toBe(0)
    expect(again.byteLength).toBe(sizeClass(64 * KiB))
    expect(new Uint8Array(again)[0]).toBe(7)
    // A buffer that was not lent after all goes back as it is.
    loan.giveBack(again)
    expect(new Uint8Array(loan.take(64 * KiB))[0]).toBe(7)
    expect(again.byteLength).toBe(0)
    expect(loan.reused).toBe(2)
  })

  it('shared: makes SharedArrayBuffers and hands the same one out again once the reader is done with it', () => {
    const loan = new BufferLoan(4, true)
    const first = lendOne(loan, 64 * KiB, 5)
    expect(first).toBeInstanceOf(SharedArrayBuffer)
    const kept = new Uint8Array(first)
    expect(taken(loan, 64 * KiB)).toBe(0)
    loan.doneWith(64 * KiB)
    const again = loan.take(64 * KiB)
    // Not detached (it cannot be): the very buffer, and a view kept of it reads what is there.
    expect(again).toBe(first)
    expect(kept.length).toBe(sizeClass(64 * KiB))
    expect(new DataView(again).getUint32(0)).toBe(TAG + 5)
    expect(loan.reused).toBe(1)
  })

  it('hands out only a buffer large enough and at most four times the size asked for', () => {
    const loan = new BufferLoan(4)
    lendOne(loan, 64 * KiB, 1)
    loan.doneWith(64 * KiB)
    expect(taken(loan, 65 * KiB)).toBe(0)
    lendOne(loan, 2048 * KiB, 2)
    loan.doneWith(Number.MAX_SAFE_INTEGER)
    // 64 KiB is too small for 100 KiB, 2 MiB more than four times it: a new one.
    expect(taken(loan, 100 * KiB)).toBe(0)
    expect(taken(loan, 1024 * KiB)).toBe(2)
    expect(taken(loan, 64 * KiB)).toBe(1)
    // `capacity`: a new buffer of exactly that size when none is there.
    expect(new BufferLoan(4).take(1000, 5000).byteLength).toBe(5000)
  })

  it('keeps at most `keep` buffers, skips detached ones, and forgets all on clear', () => {
    const loan = new BufferLoan(2)
    const lent = [1, 2, 3, 4].map(() => lendOne(loan, 64 * KiB))
    // One of them moved to another thread: detached here (byteLength 0), never handed out again.
    const {port1, port2} = new MessageChannel()
    port1.postMessage(lent[0], [lent[0] as ArrayBuffer])
    port1.close()
    port2.close()
    expect(lent[0].byteLength).toBe(0)
    loan.doneWith(4 * 64 * KiB)
    loan.take(64 * KiB)
    loan.take(64 * KiB)
    loan.take(64 * KiB)
    // lent[1] and lent[2] came back (detached by the take); lent[3] was past `keep`, and lent[0] gone.
    expect(lent.map((b) => b.byteLength)).toEqual([0, 0, 0, sizeClass(64 * KiB)])
    expect(loan.reused).toBe(2)

    const b = lendOne(loan, 64 * KiB)
    loan.clear()
    loan.doneWith(Number.MAX_SAFE_INTEGER)
    loan.take(64 * KiB)
    expect(b.byteLength).toBe(sizeClass(64 * KiB))
    expect(loan.reused).toBe(2)
  })

  it('tracks at most 64 MiB of buffers the reader has not said it is done with, and always the newest', () => {
    const loan = new BufferLoan(100)
    Array.from({length: 6}, (_, i) => lendOne(loan, 16 * 1024 * KiB, i + 1))
    expect(loan.lentNow).toBe(64 * 1024 * KiB)
    loan.doneWith(Number.MAX_SAFE_INTEGER)
    expect(loan.lentNow).toBe(0)
    // The two oldest were forgotten (left to the garbage collector); the four newest came back.
    const back = Array.from({length: 5}, () => taken(loan, 16 * 1024 * KiB))
    expect(back).toEqual([3, 4, 5, 6, 0])
    expect(loan.reused).toBe(4)
    // One buffer larger than the cap is still tracked: the newest always is.
    const huge = lendOne(loan, 80 * 1024 * KiB)
    expect(loan.lentNow).toBe(huge.byteLength)
  })

  it('tracks at most 64 buffers when the reader never says it is done', () => {
    const loan = new BufferLoan(100)
    const lent = Array.from({length: 70}, () => lendOne(loan, 64 * KiB))
    loan.doneWith(Number.MAX_SAFE_INTEGER)
    Array.from({length: 70}, () => loan.take(64 * KiB))
    // The six oldest were forgotten (left to the garbage collector); the newest 64 came back
    // (handed out again, so detached here).
    expect(lent.slice(0, 6).every((b) => b.byteLength > 0)).toBe(true)
    expect(lent.slice(6).every((b) => b.byteLength === 0)).toBe(true)
    expect(loan.reused).toBe(64)
  })
})
