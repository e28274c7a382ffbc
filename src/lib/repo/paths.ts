/** The repository's key layout (DESIGN.md "The archive"). */
import type {EncryptOptions} from '../archive/types.js'

export const REPO_INFO_KEY = 'moctl-br.json'
export const BACKUPS_PREFIX = 'backups'
export const RECORD_FILE = 'backup.json'

/** Every key of backup `id` starts with this (the '/' keeps one id from being a prefix of another). */
export const backupPrefix = (id: string): string => `${BACKUPS_PREFIX}/${id}/`
export const objectKey = (id: string, file: string): string => `${backupPrefix(id)}${file}`
/** The backup id a key under backups/ belongs to, or undefined. */
export const backupIdOf = (key: string): string | undefined =>
  key.startsWith(`${BACKUPS_PREFIX}/`) ? key.split('/')[1] || undefined : undefined

/** data.tar.zst.age, or data.tar.zst for a backup stored unencrypted */
export const archiveFileName = (encrypt: Pick<EncryptOptions, 'type'>): string =>
  encrypt.type === 'none' ? 'data.tar.zst' : 'data.tar.zst.age'
export const manifestFileName = (encrypt: Pick<EncryptOptions, 'type'>): string =>
  encrypt.type === 'none' ? 'manifest.json' : 'manifest.age'
