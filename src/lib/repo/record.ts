/**
 * backup.json, parsed strictly: a record that does not have the shape this version writes is an
 * integrity failure naming the backup and the field, never a half-read object that fails later.
 */
import {integrityError} from '../errors.js'
import {type BackupRecord, RECORD_FORMATS_READ} from './types.js'

type Check = (v: unknown) => boolean
const str: Check = (v) => typeof v === 'string'
const num: Check = (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0
const strOrNull: Check = (v) => v === null || typeof v === 'string'
const strArray: Check = (v) => Array.isArray(v) && v.every((x) => typeof x === 'string')
const oneOf =
  (...values: unknown[]): Check =>
  (v) =>
    values.includes(v)
const sha256: Check = (v) => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v)
/** A field added later: older records do not have it. */
const optional =
  (check: Check): Check =>
  (v) =>
    v === undefined || check(v)
/** A store's checksum as backends report it: `sha256:<base64>`, with `-<parts>` for a multipart upload. */
const storeChecksum: Check = (v) => typeof v === 'string' && /^sha256:[\d+/A-Za-z]{43}=(-[1-9]\d{0,4})?$/.test(v)
const iso: Check = (v) => typeof v === 'string' && !Number.isNaN(Date.parse(v))

const SHAPE: Record<string, Check> = {
  'archive.compression': oneOf('zstd'),
  'archive.file': str,
  'archive.level': num,
  'archive.sha256': sha256,
  'archive.size': num,
  'archive.storeChecksum': optional(storeChecksum),
  backupTs: str,
  base: strOrNull,
  chain: strArray,
  completedAt: iso,
  'counts.dirs': num,
  'counts.files': num,
  'counts.symlinks': num,
  createdAt: iso,
  durationMs: num,
  'encryption.passphrase': (v) => typeof v === 'boolean',
  'encryption.recipients': strArray,
  'encryption.type': oneOf('none', 'passphrase', 'recipients'),
  excluded: optional(strArray),
  id: str,
  'manifest.file': str,
  'manifest.plainSha256': sha256,
  'manifest.sha256': sha256,
  'manifest.size': num,
  'manifest.storeChecksum': optional(storeChecksum),
  mode: oneOf('cold', 'online'),
  'sizes.archived': num,
  'sizes.total': num,
  'source.dataDir': str,
  'source.host': str,
  'source.mo': optional(
    (v) =>
      typeof v === 'object' &&
      v !== null &&
      strOrNull((v as Record<string, unknown>).commit) &&
      oneOf(null, 'DISK', 'DISK-V2')((v as Record<string, unknown>).sharedBackend) &&
      strOrNull((v as Record<string, unknown>).version),
  ),
  'source.serverVersion': strOrNull,
  'tool.name': str,
  'tool.version': str,
  type: oneOf('full', 'incremental'),
}

export function parseRecord(text: string, id: string): BackupRecord {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw integrityError(
      `backup ${id}: backup.json is not valid JSON`,
      'the record is damaged: restore it from another copy of the repository, or delete the backup',
    )
  }

  if (typeof json !== 'object' || json === null) throw integrityError(`backup ${id}: backup.json is not an object`)
  const {format} = json as {format?: unknown}
  if (typeof format !== 'number' || !RECORD_FORMATS_READ.includes(format)) {
    throw integrityError(
      `backup ${id}: record format ${String(format)} is not one this version reads (${RECORD_FORMATS_READ.join(', ')})`,
      'use the moctl br version that wrote it, or a newer one',
    )
  }

  for (const [path, check] of Object.entries(SHAPE)) {
    const value = valueAt(json, path)
    if (!check(value)) throw integrityError(`backup ${id}: backup.json has a bad or missing ${path}`)
  }

  if (format >= 2 && !validSignatureField((json as {signature?: unknown}).signature))
    throw integrityError(`backup ${id}: backup.json has a bad or missing signature`)
  const record = json as BackupRecord
  if (record.id !== id) throw integrityError(`backup ${id}: backup.json belongs to backup ${record.id}`)
  if (record.chain.at(-1) !== id) throw integrityError(`backup ${id}: its chain does not end with itself`)
  return record
}

function validSignatureField(v: unknown): boolean {
  if (v === null) return true
  if (typeof v !== 'object' || v === undefined) return false
  const {alg, signer, value} = v as Record<string, unknown>
  return alg === 'ed25519' && typeof signer === 'string' && typeof value === 'string' && Object.keys(v).length === 3
}

function valueAt(json: unknown, path: string): unknown {
  let value = json
  for (const key of path.split('.'))
    value = value && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined
  return value
}
