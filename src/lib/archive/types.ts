/**
 * The contracts of the archive core: manifest entries, encryption settings and progress.
 * The archive is age(zstd(pax tar)); see DESIGN.md "The archive".
 */

/**
 * Who owned an entry on the backup host: the numeric ids, and their names there ('' when the id
 * had no name). A restore as root gives the owner back by name when the name exists on the
 * restoring host, by number otherwise (archive/owners.ts).
 */
export interface Owner {
  gid: number
  gname: string
  uid: number
  uname: string
}

/**
 * One entry of a backup's full file set. Paths are relative to the data dir, '/'-separated.
 * `owner` is absent in manifests written before owners were recorded: such entries are restored
 * owned by the restoring user.
 */
export type ManifestEntry =
  | {
      /** id of the backup in the chain whose archive holds these bytes */
      in: string
      mode: number
      mtimeMs: number
      owner?: Owner
      /**
       * manifest format 2: a file assembled from the archives of several backups, oldest first: the
       * first part is the file as a backup held it whole, each later part the bytes appended after
       * it, held by a later backup as `append/<path>` (pack.ts). At least two; their sizes add up
       * to `size`; the last is in `in`. `sha256` is still the whole file's.
       */
      parts?: FilePart[]
      path: string
      sha256: string
      size: number
      type: 'file'
    }
  | {mode: number; mtimeMs: number; owner?: Owner; path: string; type: 'dir'}
  | {mtimeMs: number; owner?: Owner; path: string; target: string; type: 'symlink'}

/** One archive's piece of an assembled file: its bytes follow the parts before it. */
export interface FilePart {
  /** the backup whose archive holds these bytes */
  in: string
  sha256: string
  size: number
}

export type FileEntry = Extract<ManifestEntry, {type: 'file'}>
export type DirEntry = Extract<ManifestEntry, {type: 'dir'}>
/** The data directory's own mode, mtime and owner (its entry in the tar is `data/`). */
export type RootEntry = Omit<DirEntry, 'path' | 'type'>

export interface Manifest {
  backupId: string
  /** oldest first; the last element is backupId */
  chain: string[]
  createdAt: string
  /** paths present in the base but gone in this backup (incrementals) */
  deleted: string[]
  /** every entry of the full file set, sorted by path */
  entries: ManifestEntry[]
  /** 2 when a file has `parts`, 1 otherwise (so that a backup without them reads in older versions) */
  format: 1 | 2
  /**
   * manifest.age only (record format 2): sha256 of the backup.json it belongs to, less its
   * `manifest` and `signature` fields (repo/authenticity.ts `recordBinding`)
   */
  record?: string
  /** the data directory itself; absent in manifests written before it was recorded */
  root?: RootEntry
  type: 'full' | 'incremental'
}

/** How an archive is encrypted. `none` only when the user asked for --no-encrypt. */
export type EncryptOptions =
  | {
      passphrase: string
      /** scrypt work factor as log2 N, 1-20; 18 (age's default) when left out */ scryptLogN?: number
      type: 'passphrase'
    }
  | {recipients: string[]; type: 'recipients'}
  | {type: 'none'}

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
