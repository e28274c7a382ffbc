/**
 * glibc's malloc adapts to what a process frees: once it unmaps a chunk it had mapped for a large
 * allocation (up to 32 MiB), it serves allocations up to that size from its heap, and keeps up to
 * twice that much freed memory in the heap before it gives any back (its dynamic mmap and trim
 * thresholds). Node's starting thresholds are 128 KiB; the streams here allocate buffers of
 * 64 KiB to a few MiB by the thousand (age's chunks, reads, hashes' inputs), and on this VM a
 * page given back costs a fault of several microseconds each time it is used again.
 * `keepFreedMemory` allocates one buffer just under 32 MiB, untouched, and drops it: freed by the
 * next garbage collection, it raises both thresholds for the rest of the process, what README's
 * GLIBC_TUNABLES setting did from outside. Verify of the 1 GiB set: 41-46k page faults → 25-27k,
 * 3.05-3.18 → 2.81-2.89 s.
 *
 * Guarantees: once per process, and never an error: a libc without these thresholds (musl) or a
 * GLIBC_TUNABLES or mallopt setting (which turns them off) only sees a 31 MiB allocation freed
 * unread; no memory is touched. Not: a bound on memory. glibc then keeps up to ~62 MiB freed in its
 * heap, which counts in RSS (the memory bench checks the 256 MiB bound with it).
 */

/** Just under glibc's DEFAULT_MMAP_THRESHOLD_MAX (32 MiB on 64-bit): the largest free it learns from. */
const TEACHING_CHUNK = 31 * 1024 * 1024

let taught = false

/** Raises glibc's mmap and trim thresholds for this process (see the module header); once. */
export function keepFreedMemory(): void {
  if (taught) return
  taught = true
  // Allocated (mapped, not touched) and dropped at once: the next GC frees it.
  Buffer.allocUnsafeSlow(TEACHING_CHUNK)
}
