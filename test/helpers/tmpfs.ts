/**
 * Small tmpfs mounts for tests of full and read-only filesystems (chmod does not stop root, so a
 * read-only path is a tmpfs remounted ro, and a full one is a small tmpfs). Root only, as CI runs.
 * Every mount made is unmounted by `unmountAll`, newest first.
 */
import {execFile} from 'node:child_process'
import {mkdir} from 'node:fs/promises'
import {promisify} from 'node:util'

import {needs} from './needs.js'

const run = promisify(execFile)

export const NOT_ROOT = 'not root: cannot mount a tmpfs'

/** Whether tmpfs mounts can be made here (root); in CI a non-root run fails instead of skipping. */
export const canMount = (): boolean => needs(process.getuid?.() === 0, NOT_ROOT)

export interface Tmpfs {
  /** bind-mounts `dir` onto itself read-only (a directory that cannot be written, on a writable fs) */
  bindReadOnly(dir: string): Promise<void>
  /** mounts a tmpfs of `size` (mount's syntax: 256k, 4m) on `dir`, made if missing; returns dir */
  mount(dir: string, size: string): Promise<string>
  /** remounts the tmpfs on `dir` read-only */
  readOnly(dir: string): Promise<void>
  unmountAll(): Promise<void>
}

export function tmpfsMounts(): Tmpfs {
  const mounts: string[] = []
  return {
    async bindReadOnly(dir) {
      await run('mount', ['--bind', dir, dir])
      mounts.push(dir)
      await run('mount', ['-o', 'remount,bind,ro', dir])
    },
    async mount(dir, size) {
      await mkdir(dir, {recursive: true})
      await run('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir])
      mounts.push(dir)
      return dir
    },
    async readOnly(dir) {
      await run('mount', ['-o', 'remount,ro', dir])
    },
    async unmountAll() {
      for (const dir of mounts.splice(0).reverse()) await run('umount', [dir]).catch(() => {})
    },
  }
}
