/**
 * The checks that come before reading an archive, shared by verify and restore: the records of
 * the chain (present, consistent, and accepted by the reader's trust policy: signed by a trusted
 * signer, or bound by a passphrase, or said out loud to be unauthenticated), the stored objects'
 * presence and size, and the manifest (its checksum, then decrypted, then matched against its
 * record). A wrong key or a forged record fails here, before anything is written or stopped.
 */
import type {DecryptOptions, Manifest} from '../archive/types.js'
import type {BackupRecord} from '../repo/types.js'

import {decryptBuffer} from '../archive/age.js'
import {decodeManifest} from '../archive/manifest.js'
import {integrityError, usageError} from '../errors.js'
import {sha256Hex} from '../hash.js'
import {
  authenticate,
  checkManifestBinding,
  NO_TRUST,
  type TrustPolicy,
  unauthenticatedWarning,
} from '../repo/authenticity.js'
import {openRepository, type Repository} from '../repo/repository.js'
import {resolveChain} from './chain.js'

export interface CheckedBackup {
  /** undefined when no keys were asked for (verify --quick) */
  manifest?: Manifest
  /** the chain's records, oldest first, each checked present and complete; the last is `record` */
  members: BackupRecord[]
  record: BackupRecord
  repo: Repository
}

export interface CheckOptions {
  /** `latest` names the newest backup of this data dir (restore's target) */
  dataDir?: string
  /** told once per run which backups could not be authenticated */
  onWarning?: (message: string) => void
  trust?: TrustPolicy
}

export async function checkBackup(
  repoPath: string,
  id: string,
  keys: DecryptOptions | null,
  options: CheckOptions = {},
): Promise<CheckedBackup> {
  const repo = await openRepository(repoPath)
  const record = await repo.getBackup(id, {dataDir: options.dataDir})
  const members = await resolveChain(repo, record)
  const trust = options.trust ?? NO_TRUST
  const unchecked = members.filter((m) => authenticate(m, trust, keys) === 'none')
  const warning = unauthenticatedWarning(unchecked, trust)
  if (warning) options.onWarning?.(warning)
  if (!keys) return {members, record, repo}
  return {manifest: await readManifest(repo, record, keys), members, record, repo}
}

/** A backup's manifest from the repository: checksum of the stored object, decrypted, decoded, its own. */
export async function readManifest(repo: Repository, record: BackupRecord, keys: DecryptOptions): Promise<Manifest> {
  // Bounded by the record's size: a bigger object is refused before it is read into memory.
  const manifestBytes = await repo.readObject(record.id, record.manifest.file, {maxBytes: record.manifest.size})
  if (sha256Hex(manifestBytes) !== record.manifest.sha256) {
    throw integrityError(`backup ${record.id}: manifest does not match its checksum in backup.json`)
  }

  const manifest = decodeManifest(
    await decryptBuffer(manifestBytes, keysFor(record, keys), `backup ${record.id} manifest`),
  )
  if (manifest.backupId !== record.id)
    throw integrityError(`backup ${record.id}: its manifest belongs to backup ${manifest.backupId}`)
  checkManifestBinding(record, manifest)
  return manifest
}

/**
 * The record says how the archive was encrypted; null (no keys needed) for --no-encrypt backups.
 * Keys of the wrong kind only (an identity for a passphrase backup, or the reverse) are refused
 * by name, before any decryption is tried.
 */
export function keysFor(record: BackupRecord, keys: DecryptOptions): DecryptOptions | null {
  if (record.encryption.type === 'none') return null
  if (keys.identities.length === 0 && keys.passphrases.length === 0) {
    throw usageError(
      `backup ${record.id} is encrypted ${record.encryption.type === 'passphrase' ? 'with a passphrase' : 'to age recipients'}: no key given`,
      record.encryption.type === 'passphrase'
        ? 'pass --passphrase-file FILE (or MOCTL_BR_PASSPHRASE)'
        : 'pass --identity FILE (or MOCTL_BR_IDENTITY)',
    )
  }

  // The right kind of key is a usage question (exit 2); a key of the right kind that does not fit is exit 3.
  if (record.encryption.type === 'passphrase' && keys.passphrases.length === 0) {
    throw usageError(
      `backup ${record.id} is encrypted with a passphrase: an age identity (--identity) cannot open it`,
      'pass --passphrase-file FILE (or MOCTL_BR_PASSPHRASE) with the passphrase it was taken with',
    )
  }

  if (record.encryption.type === 'recipients' && keys.identities.length === 0) {
    throw usageError(
      `backup ${record.id} is encrypted to age recipients (age1…): a passphrase cannot open it`,
      'pass --identity FILE (the reader key or age identity of one of its recipients, or MOCTL_BR_IDENTITY)',
    )
  }

  return keys
}
