/**
 * The base of an incremental: which backup (named, or the newest complete one of the same data
 * dir and host), and its manifest (from the local cache, else decrypted with the given keys).
 * Both are settled before the service is stopped, so a wrong --base or a missing key costs no
 * downtime.
 */
import type {DecryptOptions, Manifest} from '../archive/types.js'
import type {ManifestCache} from '../repo/manifest-cache.js'
import type {Repository} from '../repo/repository.js'
import type {BackupRecord} from '../repo/types.js'

import {usageError} from '../errors.js'
import {readManifest} from '../repo/catalog.js'

export async function resolveBase(
  repo: Repository,
  options: {baseId?: string; dataDir: string; force: boolean; host: string; onWarning?: (message: string) => void},
): Promise<BackupRecord> {
  if (options.baseId) {
    const base = await repo.getBackup(options.baseId, {dataDir: options.dataDir, onWarning: options.onWarning})
    if (!options.force && (base.source.dataDir !== options.dataDir || base.source.host !== options.host)) {
      throw usageError(
        `base ${base.id} was taken from ${base.source.dataDir} on ${base.source.host}, not ${options.dataDir} on ${options.host}`,
        'pick a base of this data dir (`moctl br list`), or pass --force if the directory moved',
      )
    }

    return base
  }

  const {damaged, records} = await repo.scanBackups()
  for (const d of damaged) options.onWarning?.(`backup ${d.id} is damaged and was passed over as a base: ${d.reason}`)
  const candidates = records.filter((r) => r.source.dataDir === options.dataDir && r.source.host === options.host)
  const base = candidates.at(-1)
  if (!base) {
    throw usageError(
      `no earlier backup of ${options.dataDir} in ${repo.path} to base an incremental on`,
      'take a full backup first (--type full), or name one with --base ID',
    )
  }

  return base
}

export async function loadBaseManifest(
  repo: Repository,
  base: BackupRecord,
  options: {cache?: ManifestCache; keys: DecryptOptions},
): Promise<Manifest> {
  const cached = await options.cache?.get(repo.path, base)
  if (cached) return cached
  if (
    base.encryption.type !== 'none' &&
    options.keys.identities.length === 0 &&
    options.keys.passphrases.length === 0
  ) {
    throw usageError(
      `the manifest of base ${base.id} is not cached on this host and no key was given to read it`,
      'pass --identity (or --passphrase-file) so the base can be read, or take --type full',
    )
  }

  const manifest = await readManifest(repo, base, options.keys)
  await options.cache?.put(repo.path, manifest)
  return manifest
}
