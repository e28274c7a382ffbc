/**
 * The checks a backup makes before it changes anything: the paths it was given (checkPaths), that
 * a cold backup that stops nothing is not reading a running service (checkNotRunning), and that a
 * signing writer's base is its own (checkBaseSigner). Each refuses with a usage or integrity error
 * that names the thing and the fix; none writes anything.
 */
import {stat} from 'node:fs/promises'

import type {BackupRecord} from '../repo/types.js'
import type {SigningKey} from '../signing.js'
import type {BackupOptions} from './types.js'

import {integrityError, usageError} from '../errors.js'
import {overlap} from '../path-overlap.js'
import {signatureState} from '../repo/authenticity.js'

/**
 * Refuses (exit 2), before anything is created, a repository that overlaps the data directory
 * (every backup would hold the ones before it, or a backup would read itself), and a clone or
 * online folder inside it; a --clone-dir must be an existing directory.
 */
export async function checkPaths(options: BackupOptions): Promise<void> {
  const {dataDir} = options
  const repoPath = options.repo.location
  // An S3 repository cannot overlap a directory of this host.
  const repo = options.repo.s3 ? null : await overlap(repoPath, dataDir)
  if (repo) {
    throw usageError(
      repo === 'same'
        ? `repository ${repoPath} is the data directory itself`
        : repo === 'inside'
          ? `repository ${repoPath} is inside the data directory ${dataDir}: every backup would hold the ones before it`
          : `data directory ${dataDir} is inside the repository ${repoPath}: backups would read the repository`,
      'keep the repository outside the data directory: pass --path with another directory (e.g. /backups/mo)',
    )
  }

  for (const [flag, dir] of [
    ['--clone-dir', options.cloneDir],
    ['--online-dir', options.onlineDir],
  ] as const) {
    // eslint-disable-next-line no-await-in-loop -- two paths at most
    if (dir && ['inside', 'same'].includes((await overlap(dir, dataDir)) ?? '')) {
      throw usageError(
        `${flag} ${dir} is inside the data directory ${dataDir}: the copy would land in what it copies`,
        `pass ${flag} with a directory outside the data directory`,
      )
    }
  }

  if (options.cloneDir && options.clone) {
    const info = await stat(options.cloneDir).catch((error: NodeJS.ErrnoException) => error)
    if (info instanceof Error && info.code === 'ENOENT') {
      throw usageError(
        `clone directory ${options.cloneDir} does not exist`,
        "create it (on the data directory's filesystem, where reflinks work), or pass another --clone-dir",
      )
    }

    if (!(info instanceof Error) && !info.isDirectory())
      throw usageError(`clone directory ${options.cloneDir} is not a directory`, 'pass --clone-dir with a directory')
  }
}

/**
 * A cold backup that stops nothing reads whatever the running service is writing: not a
 * consistent copy. Refused (exit 2) while something answers SQL, unless --allow-running.
 */
export async function checkNotRunning(options: BackupOptions): Promise<void> {
  if (options.mode !== 'cold' || options.service || !(await options.isRunning?.())) return
  const where = options.sql ? ` on ${options.sql.host}:${options.sql.port}` : ''
  if (options.allowRunning) {
    options.onWarning?.(
      `something answers SQL${where}: backing up a running service (--allow-running); files that change while read fail the backup, and the copy may not be consistent`,
    )
    return
  }

  throw usageError(
    `something answers SQL${where}: a cold backup of a running service is not a consistent copy`,
    'let backup stop and start it: --service mo_ctl, --service systemd, or --service command --stop-cmd … --start-cmd …',
    "or back up while it runs with --mode online (MatrixOne's own BACKUP)",
    'or pass --allow-running if you know the files do not change (e.g. a paused or read-only service)',
  )
}

/**
 * A signing writer builds only on what it signed itself: an incremental on a forged or unsigned
 * base could not be restored by readers that require signatures.
 */
export function checkBaseSigner(base: BackupRecord, signing: SigningKey): void {
  const state = signatureState(base)
  if (state === 'invalid') {
    throw integrityError(
      `base ${base.id}: its signature does not match its backup.json: the record was changed after it was written`,
      'take --type full, and find out who changed the repository',
    )
  }

  const signer = base.signature?.signer
  if (!signer || signer !== signing.signer) {
    throw usageError(
      `base ${base.id} is ${signer ? `signed by ${signer}` : 'not signed'}, not by this writer key (${signing.signer})`,
      'take --type full with this writer key, or pass --base with a backup it signed',
    )
  }
}
