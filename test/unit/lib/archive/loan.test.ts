/**
 * Output buffers lent to a reader (loan.ts): one is filled again only once the reader is done
 * with every byte of it, in order of position; a detached one is never handed out; at most `keep`
 * wait; a reader that never says anything costs nothing beyond the tracking cap.
 */
import {MessageChannel} from 'node:worker_threads'
import {describe, expect, it} from 'vitest'

import {BufferLoan, sizeClass} from '../../../../src/lib/archive/loan.js'

const KiB = 1024

/** Lends a buffer of `size` bytes from `loan` as the next output, all of it used. */
function lendOne(loan: BufferLoan, size: number): ArrayBuffer {
  const buffer = loan.take(size)
  loan.pushed(new Uint8Array(buffer, 0, size), true)
  return buffer
}

describe('BufferLoan', () => {
  it('gives a buffer again only once the reader is done with its last byte', () => {
    const loan = new BufferLoan(4)
    const a = lendOne(loan, 100 * KiB) // bytes 0 to 100 KiB
    const b = lendOne(loan, 100 * KiB) // to 200 KiB
    expect(a.byteLength).toBe(sizeClass(100 * KiB))
    loan.doneWith(100 * KiB - 1)
    expect(loan.take(100 * KiB)).not.toBe(a)
    loan.doneWith(100 * KiB)
    expect(loan.take(100 * KiB)).toBe(a)
    // Output that is not lent (the main thread's own) moves the position on, and is never handed out.
    loan.pushed(Buffer.alloc(10), false)
    loan.doneWith(200 * KiB + 10)
    expect(loan.take(100 * KiB)).toBe(b)
    expect(loan.reused).toBe(2)
  })

  it('hands out only a buffer large enough and at most four times the size asked for', () => {
    const loan = new BufferLoan(4)
    const small = lendOne(loan, 64 * KiB)
    loan.doneWith(64 * KiB)
    expect(loan.take(65 * KiB)).not.toBe(small)
    const big = lendOne(loan, 2048 * KiB)
    loan.doneWith(Number.MAX_SAFE_INTEGER)
    expect(loan.take(100 * KiB)).not.toBe(big)
    expect(loan.take(1024 * KiB)).toBe(big)
    // `capacity`: a new buffer of exactly that size when none is there.
    expect(new BufferLoan(4).take(1000, 5000).byteLength).toBe(5000)
  })

  it('keeps at most `keep` buffers, skips detached ones, and forgets all on clear', () => {
    const loan = new BufferLoan(2)
    const lent = [1, 2, 3, 4].map(() => lendOne(loan, 64 * KiB))
    // One of them moved to another thread: detached here (byteLength 0), never handed out again.
    const {port1, port2} = new MessageChannel()
    port1.postMessage(lent[0], [lent[0]])
    port1.close()
    port2.close()
    expect(lent[0].byteLength).toBe(0)
    loan.doneWith(4 * 64 * KiB)
    const again = [loan.take(64 * KiB), loan.take(64 * KiB), loan.take(64 * KiB)]
    expect(again.slice(0, 2)).toEqual([lent[1], lent[2]])
    expect(again[2]).not.toBe(lent[3])
    expect(loan.reused).toBe(2)

    const b = lendOne(loan, 64 * KiB)
    loan.clear()
    loan.doneWith(Number.MAX_SAFE_INTEGER)
    expect(loan.take(64 * KiB)).not.toBe(b)
  })

  it('tracks at most 64 buffers when the reader never says it is done', () => {
    const loan = new BufferLoan(100)
    const lent = Array.from({length: 70}, () => lendOne(loan, 64 * KiB))
    loan.doneWith(Number.MAX_SAFE_INTEGER)
    const back = new Set(Array.from({length: 70}, () => loan.take(64 * KiB)))
    // The six oldest were forgotten (left to the garbage collector); the newest 64 came back.
    expect(lent.slice(0, 6).some((b) => back.has(b))).toBe(false)
    expect(lent.slice(6).every((b) => back.has(b))).toBe(true)
  })
})
