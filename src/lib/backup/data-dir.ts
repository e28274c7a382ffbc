/**
 * Checks on the data directory a backup reads, so a typo fails at once with the fix, not after
 * the service was stopped. The walk that lists every directory is checkNames (archive/walk.ts),
 * run right after this; errors other than a missing directory (permission, a file in the path)
 * are left to fs-errors.ts, which names the path and the fix.
 */
import {readdir, stat} from 'node:fs/promises'

import {usageError} from '../errors.js'

export async function checkDataDir(dir: string): Promise<{entries: number}> {
  let info
  try {
    info = await stat(dir)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    throw usageError(
      `data directory ${dir} does not exist`,
      'pass --data-dir with the path of mo-data (e.g. /opt/matrixone/mo-data)',
    )
  }

  if (!info.isDirectory())
    throw usageError(`data directory ${dir} is not a directory`, 'pass --data-dir with the path of mo-data')
  const entries = await readdir(dir)
  if (entries.length === 0) {
    throw usageError(
      `data directory ${dir} is empty: nothing to back up`,
      'check --data-dir: it names the mo-data directory itself',
    )
  }

  return {entries: entries.length}
}
