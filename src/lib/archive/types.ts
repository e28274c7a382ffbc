/**
 * The contracts of the archive core: manifest entries, encryption settings and progress.
 * The archive is age(zstd(pax tar)); see DESIGN.md "The archive".
 */

/** One entry of a backup's full file set. Paths are relative to the data dir, '/'-separated. */
export type ManifestEntry =
  | {
      /** id of the backup in the chain whose archive holds these bytes */
      in: string
      mode: number
      mtimeMs: number
      path: string
      sha256: string
      size: number
      type: 'file'
    }
  | {mode: number; mtimeMs: number; path: string; type: 'dir'}
  | {mtimeMs: number; path: string; target: string; type: 'symlink'}

export type FileEntry = Extract<ManifestEntry, {type: 'file'}>

export interface Manifest {
  backupId: string
  /** oldest first; the last element is backupId */
  chain: string[]
  createdAt: string
  /** paths present in the base but gone in this backup (incrementals) */
  deleted: string[]
  /** every entry of the full file set, sorted by path */
  entries: ManifestEntry[]
  format: 1
  /**
   * manifest.age only (record format 2): sha256 of the backup.json it belongs to, less its
   * `manifest` and `signature` fields (repo/authenticity.ts `recordBinding`)
   */
  record?: string
  type: 'full' | 'incremental'
}

/** How an archive is encrypted. `none` only when the user asked for --no-encrypt. */
export type EncryptOptions =
  {passphrase: string; type: 'passphrase'} | {recipients: string[]; type: 'recipients'} | {type: 'none'}

/** What can decrypt: identities (AGE-SECRET-KEY-1…) and/or passphrases. Empty for unencrypted archives. */
export interface DecryptOptions {
  identities: string[]
  passphrases: string[]
}

export interface PackProgress {
  bytesDone: number
  bytesTotal: number
  filesDone: number
  filesTotal: number
}

export type AgeImplementation = 'native' | 'typage'
export type ZstdImplementation = 'codec' | 'napi' | 'node'

/** Which implementations a pipeline uses; by default those chosen when the modules loaded (tests and benchmarks pick). */
export interface Implementations {
  age?: AgeImplementation
  zstd?: ZstdImplementation
}
