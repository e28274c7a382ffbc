/**
 * Who wrote a backup, and what the reader accepts (README "Threat model").
 *
 * A repository writer who knows the age recipient can write an archive that decrypts, so
 * encryption alone proves nothing about the writer. Two things do:
 * - a signature: the backup host holds an Ed25519 signing key (the writer key) and signs the
 *   record, which names the SHA-256 of the archive and of manifest.age, so the signature covers
 *   every byte of the backup; readers accept the signers they were given (the reader key file's
 *   `brsig1…` lines, --trusted-signer);
 * - a passphrase: only its holders can encrypt to it, and manifest.age carries the SHA-256 of the
 *   record (`recordBinding`), so no field of the record changes unnoticed.
 *
 * Guarantees: the reader decides, never the record: with trusted signers, an unsigned backup or
 * one signed by another key is refused (exit 3) unless the reader allows unsigned ones; a
 * signature that does not match its record is always refused; when keys are given, a backup
 * stored unencrypted is refused unless the reader allows it. Whatever is not authenticated is
 * said (a warning per run), never silently accepted. Not: freshness: a repository writer can
 * still delete backups, or hide the newest ones.
 */
import type {DecryptOptions, Manifest} from '../archive/types.js'
import type {BackupRecord, RecordSignature} from './types.js'

import {integrityError} from '../errors.js'
import {sha256Hex} from '../hash.js'
import {signBytes, type SigningKey, verifyBytes} from '../signing.js'

/** What a reader accepts; built from its flags and key files, never from the repository. */
export interface TrustPolicy {
  /** accept a backup stored unencrypted although keys were given */
  allowUnencrypted: boolean
  /** accept a backup without a signature although signers are given (backups from before signing) */
  allowUnsigned: boolean
  /** brsig1… keys whose backups are accepted; empty: none given */
  signers: string[]
}

export const NO_TRUST: TrustPolicy = {allowUnencrypted: false, allowUnsigned: false, signers: []}

/** signed: by a trusted signer; bound: a passphrase backup whose manifest names its record; none: not checked */
export type Authenticity = 'bound' | 'none' | 'signed'

const CONTEXT = 'moctl-br backup record\n'

/** JSON with object keys sorted at every level: one encoding per value, what signatures cover. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(',')}]`
  if (value && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`
  }

  return JSON.stringify(value)
}

/**
 * The SHA-256 that manifest.age carries of its record: every field but `manifest` (which names
 * manifest.age itself) and `signature` (made after).
 */
export function recordBinding(record: Omit<BackupRecord, 'manifest' | 'signature'>): string {
  return sha256Hex(Buffer.from(CONTEXT + canonicalJson({...record, manifest: undefined, signature: undefined})))
}

/** What the signature covers: the canonical record without its signature (canonicalJson drops undefined). */
function signedMessage(record: BackupRecord): Buffer {
  return Buffer.from(CONTEXT + canonicalJson({...record, signature: undefined}))
}

export function signRecord(record: BackupRecord, key: SigningKey): BackupRecord {
  const signature: RecordSignature = {alg: 'ed25519', signer: key.signer, value: signBytes(key, signedMessage(record))}
  return {...record, signature}
}

/** Whether the record carries a signature, and whether it holds for the record as it is now. */
export function signatureState(record: BackupRecord): 'invalid' | 'unsigned' | 'valid' {
  const sig = record.signature
  if (!sig) return 'unsigned'
  return verifyBytes(sig.signer, signedMessage(record), sig.value) ? 'valid' : 'invalid'
}

/**
 * Decides whether the reader accepts this record, before any of its objects is read. `keys`:
 * what the reader gave to decrypt (null: nothing, as verify --quick). Throws an integrity error
 * for what is refused; answers how the backup was authenticated, 'none' for the caller to warn.
 */
export function authenticate(record: BackupRecord, policy: TrustPolicy, keys: DecryptOptions | null): Authenticity {
  const state = signatureState(record)
  if (state === 'invalid') {
    throw integrityError(
      `backup ${record.id}: its signature does not match its backup.json: the record was changed after it was written`,
      'restore the record from another copy of the repository, or use another backup',
    )
  }

  const keysGiven = Boolean(keys && (keys.identities.length > 0 || keys.passphrases.length > 0))
  if (record.encryption.type === 'none' && keysGiven && !policy.allowUnencrypted) {
    throw integrityError(
      `backup ${record.id} is stored unencrypted, but keys were given: refusing it (whoever can write the repository could have put it there)`,
      'if it was taken with --no-encrypt on purpose, pass --allow-unencrypted',
    )
  }

  if (policy.signers.length > 0) {
    if (state === 'valid' && policy.signers.includes(record.signature!.signer)) return 'signed'
    if (state === 'unsigned' && policy.allowUnsigned) return passphraseBound(record, keys) ? 'bound' : 'none'
    throw integrityError(
      state === 'unsigned'
        ? `backup ${record.id} is not signed, and only backups of a trusted signer are accepted`
        : `backup ${record.id} is signed by ${record.signature!.signer}, which is not a trusted signer`,
      state === 'unsigned'
        ? 'whoever can write the repository could have written it; if it was taken without --writer-key, pass --allow-unsigned'
        : 'whoever can write the repository could have written it; add that signer (--trusted-signer) only if it is yours',
    )
  }

  return passphraseBound(record, keys) ? 'bound' : 'none'
}

/** A passphrase backup of format 2, read with a passphrase: manifest.age names the record. */
function passphraseBound(record: BackupRecord, keys: DecryptOptions | null): boolean {
  return record.format >= 2 && record.encryption.type === 'passphrase' && (keys?.passphrases.length ?? 0) > 0
}

/**
 * The decrypted manifest.age against its record: the manifest names the record it was written
 * with (format 2), and the chain and type the record claims are the manifest's.
 */
export function checkManifestBinding(record: BackupRecord, manifest: Manifest): void {
  // A manifest that names its record is always held to it (a record relabelled format 1 too);
  // format 2 encrypted backups always name theirs.
  const mustBind = manifest.record !== undefined || (record.format >= 2 && record.encryption.type !== 'none')
  if (mustBind && manifest.record !== recordBinding(record)) {
    throw integrityError(
      `backup ${record.id}: backup.json was changed after the backup was written (it does not match its manifest)`,
      'restore the record from another copy of the repository, or use another backup',
    )
  }

  if (manifest.chain.join(',') !== record.chain.join(',') || manifest.type !== record.type) {
    throw integrityError(
      `backup ${record.id}: backup.json says ${record.type} with chain ${record.chain.join(' ← ')}, its manifest ${manifest.type} with chain ${manifest.chain.join(' ← ')}`,
      'the record was edited: restore it from another copy of the repository, or use another backup',
    )
  }
}

/** The one warning a run gives for the backups it could not authenticate. */
export function unauthenticatedWarning(records: BackupRecord[], policy: TrustPolicy): string | undefined {
  if (records.length === 0) return undefined
  const ids = records.map((r) => r.id).join(', ')
  const signed = records.filter((r) => r.signature)
  if (policy.signers.length === 0 && signed.length === records.length) {
    const signers = [...new Set(signed.map((r) => r.signature!.signer))].join(', ')
    return `authenticity not checked for ${ids}: signed by ${signers}, but no trusted signer was given (pass --trusted-signer, or the reader key from \`moctl br key generate\` as --identity)`
  }

  return `authenticity not checked for ${ids}: whoever can write the repository and knows its public key could have written ${records.length > 1 ? 'them' : 'it'} (sign backups with --writer-key and read them with the reader key, or use a passphrase)`
}
