/** The repository's key layout (DESIGN.md "The archive"). */
import type {EncryptOptions} from '../archive/types.js'

export const REPO_INFO_KEY = 'moctl-br.json'
export const BACKUPS_PREFIX = 'backups'
export const RECORD_FILE = 'backup.json'

export const backupPrefix = (id: string): string => `${BACKUPS_PREFIX}/${id}`
export const objectKey = (id: string, file: string): string => `${backupPrefix(id)}/${file}`

/** data.tar.zst.age, or data.tar.zst for a backup stored unencrypted */
export const archiveFileName = (encrypt: Pick<EncryptOptions, 'type'>): string =>
  encrypt.type === 'none' ? 'data.tar.zst' : 'data.tar.zst.age'
export const manifestFileName = (encrypt: Pick<EncryptOptions, 'type'>): string =>
  encrypt.type === 'none' ? 'manifest.json' : 'manifest.age'
