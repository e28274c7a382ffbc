/**
 * What the repository knows of its backups, beyond listing them (repository.ts): a backup's chain
 * of records, its manifest, and the checks that come before reading an archive, shared by backup
 * (an incremental's base), verify and restore.
 *
 * Guarantees: a chain's records are present, complete, consistent with each other (member i's own
 * chain is the target's first i+1 ids, only the first is full) and their objects have the size
 * their records say; every record is accepted by the reader's trust policy (signed by a trusted
 * signer, or bound by a passphrase, or said out loud to be unauthenticated); a manifest is checked
 * against its record's checksum before it is decrypted, then matched against its record. A wrong
 * key or a forged record fails here, before anything is written or stopped.
 * Not: reading archives (restore/chain.ts does, with archive/), nor locking (readers take no lock).
 */
import type {DecryptOptions, Manifest} from '../archive/types.js'
import type {RepoAddress} from './address.js'
import type {ObjectInfo} from './backend.js'
import type {BackupRecord} from './types.js'

import {decryptBuffer} from '../archive/age.js'
import {decodeManifest} from '../archive/manifest.js'
import {BrError, integrityError, labelled, usageError} from '../errors.js'
import {sha256Hex} from '../hash.js'
import {authenticate, checkManifestBinding, NO_TRUST, type TrustPolicy, unauthenticatedWarning} from './authenticity.js'
import {openRepository, type Repository} from './repository.js'

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
  address: RepoAddress | string,
  id: string,
  keys: DecryptOptions | null,
  options: CheckOptions = {},
): Promise<CheckedBackup> {
  const repo = await openRepository(address)
  const record = await repo.getBackup(id, {dataDir: options.dataDir, onWarning: options.onWarning})
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

  const plain = await decryptBuffer(manifestBytes, keysFor(record, keys), `backup ${record.id} manifest`)
  let manifest: Manifest
  try {
    manifest = decodeManifest(plain)
  } catch (error) {
    // Which backup of a chain: decodeManifest knows only the bytes.
    if (!(error instanceof BrError)) throw error
    throw labelled(error, `backup ${record.id}`)
  }

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

/**
 * The records of a chain, oldest first, each present, complete, with its objects of the right
 * size, and consistent with the target's chain: member i's own chain is the target's first i+1
 * ids, and only the first member is a full backup.
 */
export async function resolveChain(repo: Repository, target: BackupRecord): Promise<BackupRecord[]> {
  const members: BackupRecord[] = []
  for (const [i, id] of target.chain.entries()) {
    let record: BackupRecord
    try {
      // eslint-disable-next-line no-await-in-loop
      record = id === target.id ? target : await repo.getBackup(id)
    } catch (error) {
      if (error instanceof BrError && error.code === 'usage') {
        throw integrityError(
          `backup ${id}, which ${target.id} is built on, is missing or incomplete`,
          'restore an older complete backup, or take a new full backup',
        )
      }

      throw error
    }

    if (record.id !== id) throw integrityError(`backup ${id}, which ${target.id} is built on, is missing`)
    const expectedChain = target.chain.slice(0, i + 1).join(',')
    if (record.chain.join(',') !== expectedChain || (record.type === 'full') !== (i === 0)) {
      throw integrityError(
        `backup ${target.id}: its chain ${target.chain.join(' ← ')} does not agree with backup ${id} (${record.type}, chain ${record.chain.join(' ← ')})`,
        'a record was edited or damaged: restore it from another copy of the repository, or use another backup',
      )
    }

    // eslint-disable-next-line no-await-in-loop
    await storedObject(repo, record.id, {...record.archive, what: 'archive'})
    // eslint-disable-next-line no-await-in-loop
    await storedObject(repo, record.id, {...record.manifest, what: 'manifest'})
    members.push(record)
  }

  return members
}

/** A backup's stored object as the store has it, after checking it is there with its record's size. */
export async function storedObject(
  repo: Repository,
  id: string,
  object: {file: string; size: number; what: string},
): Promise<ObjectInfo> {
  const {file, size: expected, what} = object
  const info = await repo.objectInfo(id, file)
  if (info === null) throw integrityError(`backup ${id}: ${what} ${file} is missing from the repository`)
  if (info.size !== expected) {
    throw integrityError(
      `backup ${id}: ${what} ${file} is ${info.size} bytes, its record says ${expected}`,
      `the ${what} is truncated or was replaced: use another backup`,
    )
  }

  return info
}
