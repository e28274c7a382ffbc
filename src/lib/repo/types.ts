/**
 * The repository's plaintext records. backup.json holds no file names: an offsite store learns
 * sizes and times, not what is inside (DESIGN.md "The archive").
 */
import type {EncryptOptions} from '../archive/types.js'

export const REPO_FORMAT = 1
/**
 * 2: adds `signature`, and the manifest binds the record (repo/authenticity.ts); 1 is still read.
 * A manifest format of its own says what the archive holds (archive/manifest.ts): a newer record
 * format would make an older version pass over the backup as damaged, and its `restore latest`
 * restore an older one without a word.
 */
export const RECORD_FORMAT = 2
export const RECORD_FORMATS_READ: readonly number[] = [1, 2]

/** <repo>/moctl-br.json */
export interface RepoInfo {
  createdAt: string
  format: number
  tool: string
}

/** Who wrote a record: `signer` (brsig1…) signed the canonical record without this field. */
export interface RecordSignature {
  alg: 'ed25519'
  signer: string
  /** base64 */
  value: string
}

/** <repo>/backups/<id>/backup.json, written last: a backup without it is incomplete. */
export interface BackupRecord {
  archive: {
    compression: 'zstd'
    /** object name inside the backup's folder: data.tar.zst.age, or data.tar.zst unencrypted */
    file: string
    level: number
    /** sha256 of the stored bytes (ciphertext), checkable without a key */
    sha256: string
    size: number
    /**
     * the checksum the store keeps of the archive (ObjectInfo.checksum), as the writer's backend
     * computed it: verify --quick compares it instead of reading the object. Absent on a
     * filesystem repository and in older records; a copy's store may report another (then it hashes)
     */
    storeChecksum?: string
  }
  /** MO's backup timestamp (online) or the moment the files were read (cold) */
  backupTs: string
  /** the backup this one is an increment of, or null for a full backup */
  base: null | string
  /** ids from the full backup to this one, oldest first */
  chain: string[]
  completedAt: string
  counts: {dirs: number; files: number; symlinks: number}
  createdAt: string
  durationMs: number
  encryption: {passphrase: boolean; recipients: string[]; type: EncryptOptions['type']}
  /** paths under the data dir a cold backup left out (--exclude and the defaults); absent in older records */
  excluded?: string[]
  format: number
  id: string
  /**
   * sha256: of the stored (encrypted) object; plainSha256: of the manifest itself, checks a local
   * cache; storeChecksum: as the archive's
   */
  manifest: {file: string; plainSha256: string; sha256: string; size: number; storeChecksum?: string}
  mode: 'cold' | 'online'
  /** the writer's Ed25519 signature over the rest of the record (format 2; null: not signed) */
  signature?: null | RecordSignature
  /** bytes of file content in the backup's full file set, and in this archive */
  sizes: {archived: number; total: number}
  /**
   * mo: the source MatrixOne's build (mo_meta's buildinfo, or `mo-service -version` beside a cold
   * data dir) and its SHARED backend (the online backup's sidecars, or the launch config); absent
   * in older records and when nothing told
   */
  source: {
    dataDir: string
    host: string
    mo?: {commit: null | string; sharedBackend: 'DISK' | 'DISK-V2' | null; version: null | string}
    serverVersion: null | string
  }
  tool: {name: string; version: string}
  type: 'full' | 'incremental'
}
