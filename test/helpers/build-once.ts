/**
 * Something the suites of one run build once and share (the host CLI install, the mariadb
 * template data dir): vitest's workers are processes, so the first to ask builds while the
 * others wait on a lock, a directory that mkdir creates for exactly one of them, holding its
 * pid. A lock whose process is gone is taken over.
 * Not: atomicity of what is built: `build` writes into a temp dir renamed into place, so that a
 * killed build never leaves half of it where `done` is looked for.
 */
import {access, mkdir, readFile, rm, writeFile} from 'node:fs/promises'
import {homedir} from 'node:os'
import {join} from 'node:path'
import {setTimeout as delay} from 'node:timers/promises'

import {pidAlive} from '../../src/lib/repo/lock.js'

/**
 * The machine's cache of what the tests install from outside this repository and never change:
 * the host CLI, the MariaDB template data dir, Node 24 (scripts/test-cache.sh says the same
 * path). The user's, not the checkout's: a clean clone finds them there, as it finds npm's cache
 * warm, instead of installing them again on every run. Read once, when this module loads.
 */
export const TEST_CACHE =
  process.env.MOCTL_BR_TEST_CACHE || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'moctl-br-test')

export const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  )

/** Runs `build` unless `done` exists, in one process of the run at a time (the one holding `lock`). */
export async function buildOnce(done: string, lock: string, build: () => Promise<void>, pollMs = 250): Promise<void> {
  for (;;) {
    if (await exists(done)) return
    if (await takeLock(lock)) break
    await delay(pollMs)
  }

  try {
    if (!(await exists(done))) await build()
  } finally {
    await rm(lock, {force: true, recursive: true})
  }
}

/** true when this process now holds the lock; a lock left by a dead process is removed first. */
async function takeLock(lock: string): Promise<boolean> {
  try {
    await mkdir(lock)
    await writeFile(`${lock}/pid`, String(process.pid))
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
  }

  const holder = Number(await readFile(`${lock}/pid`, 'utf8').catch(() => ''))
  // No pid yet: the holder is between its mkdir and its write; wait for it.
  if (holder > 0 && !pidAlive(holder)) await rm(lock, {force: true, recursive: true})
  return false
}
