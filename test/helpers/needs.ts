/**
 * What a test needs from the machine (a CLI tool, a server binary): whether it is here. Where it
 * is not, CI fails (a throw while the file is collected, naming what to install), and elsewhere
 * the caller skips with the reason in the test's name. Never an early return that passes.
 */

/** True when `found`; false (skip, saying `reason`) off CI; throws in CI. */
export function needs(found: boolean, reason: string): boolean {
  if (found) return true
  if (process.env.CI) throw new Error(`${reason} (CI must run this, not skip it)`)
  return false
}

/** ' (skipped: reason)' for a test's or suite's name when it will skip, else ''. */
export const skipNote = (ok: boolean, reason: string): string => (ok ? '' : ` (skipped: ${reason})`)
