/**
 * What a backup run is given (BackupOptions), what its steps hand one another (the stages, each
 * the one before plus what a step added), and what it holds while it runs (BackupTrail: what the
 * rollback undoes and what fs-errors.ts names). Types only: the flow is backup.ts, where the
 * files come from is sources/ (a Source hands the packer a Packing).
 */
import type {DecryptOptions, EncryptOptions, Manifest} from '../archive/types.js'
import type {ScannedEntry, ScannedFile} from '../archive/walk.js'
import type {DataDirLock} from '../datadir-lock.js'
import type {KnownPath} from '../fs-errors.js'
import type {MoBackupResult} from '../mo/backup-sql.js'
import type {RepoAddress, S3Settings} from '../repo/address.js'
import type {Unlock} from '../repo/lock.js'
import type {ManifestCache} from '../repo/manifest-cache.js'
import type {Repository} from '../repo/repository.js'
import type {BackupRecord} from '../repo/types.js'
import type {ServiceControl} from '../service/control.js'
import type {SqlSettings} from '../service/types.js'
import type {SigningKey} from '../signing.js'
import type {IncrementalPlan} from './plan.js'

export interface BackupOptions {
  /** --service none while something answers SQL: back up anyway, with a warning (default: refuse) */
  allowRunning?: boolean
  /** incrementals: the base's id (or prefix); default the newest backup of this data dir */
  baseId?: string
  /** where manifests are cached for later incrementals (none: no cache) */
  cache?: ManifestCache
  /** incrementals: decide by content hash instead of size and mtime */
  checksum: boolean
  /** cold: copy the files to pack while the service is stopped, start it, then pack from the copy */
  clone: boolean
  /** where the clone goes (default: beside the data dir, where reflinks can work) */
  cloneDir?: string
  dataDir: string
  /** keys to read the base's manifest when it is not cached */
  decrypt: DecryptOptions
  encrypt: EncryptOptions
  /** paths relative to the data dir left out of a cold backup: excludeList() */
  exclude: string[]
  /** incrementals: accept a base taken from another data dir or host */
  force: boolean
  /** cold with service null: does something answer SQL where the service would (then refuse, or warn with allowRunning) */
  isRunning?: () => Promise<boolean>
  level: number
  /** seconds to wait for the repository lock */
  lockWaitSeconds: number
  /** cold: read the stopped data dir; online: MO's BACKUP statement while it runs */
  mode: 'cold' | 'online'
  /** online: where MO's BACKUP writes its folder (default beside the data dir) */
  onlineDir?: string
  onWarning?: (message: string) => void
  /** zstd compression workers for every source (1: on the main thread), and online: BACKUP's PARALLELISM */
  parallelism: number
  /** the repository: a local directory (absolute) or an S3 location with its settings */
  repo: RepoAddress
  /** null: the service is not managed, the caller vouches that it is stopped */
  service: null | ServiceControl
  /** the writer key's signing half; null: the record is not signed */
  signing: null | SigningKey
  /** online: how to reach MO over SQL */
  sql?: SqlSettings
  /**
   * online: MO writes into this S3 staging location (`BACKUP … S3OPTION`) instead of a folder
   * beside the data dir; each run uses a fresh prefix under it, deleted when the run ends
   */
  stage?: {location: string; s3: S3Settings}
  type: 'full' | 'incremental'
}

export interface CloneResult {
  bytes: number
  files: number
  ms: number
  /** true: every file was reflinked (no data copied); false: plain copies */
  reflink: boolean
}

/** What a source hands the packer: which entries, read from where. */
export interface Packing {
  /** what to pack: every entry of a full; the new and changed ones, dirs and symlinks of an incremental */
  entries: ScannedEntry[]
  /** an incremental's plan (what stays in the chain, what was deleted); null for a full */
  plan: IncrementalPlan | null
  /** the bytes of a file when they are not under `root` on this disk (MO's S3 staging prefix); default: read from root */
  read?: (entry: ScannedFile, signal?: AbortSignal) => AsyncIterable<Buffer>
  /** removes what the source made (a clone, MO's folder); safe to call twice; nothing for the data dir itself */
  release(): Promise<void>
  /** the directory the entries' paths are relative to, read while packing */
  root: string
}

/** An incremental's base: its record and its manifest. */
export interface Base {
  manifest: Manifest
  record: BackupRecord
}

/**
 * What a run begins with. The values a step may replace stand here with what holds when that step
 * is left out: no base (a full), no clone, no data dir lock, MO not involved (cold), no downtime.
 */
export interface Begun {
  base: Base | null
  clone: CloneResult | null
  /** the data dir's lock, when the source reads the data dir (and it could be taken) */
  dataDirLock: DataDirLock | undefined
  id: string
  /** online: what MO's BACKUP reported */
  mo: MoBackupResult | null
  options: BackupOptions
  /** from the stop command until the service answered SQL again (null: not stopped) */
  serviceDownMs: null | number
  startedAt: Date
}

/** The repository is open and locked, the data dir locked (when the source reads it) and checked. */
export interface Opened extends Begun {
  repo: Repository
}

/** A source has made its files ready: where they are, and which of them to pack. */
export interface Taken extends Opened {
  packing: Packing
}

/** The archive is in the repository (not yet listed: no record). */
export interface Packed extends Taken {
  /** storeChecksum: the store's checksum of the archive, where the backend has one (SavedObject) */
  archive: {sha256: string; size: number; storeChecksum?: string}
  /** the manifest as the archive wrote it, before publish binds it to the record */
  manifest: Manifest
}

/** The run's end: the record as published. */
export interface Published extends Packed {
  record: BackupRecord
}

/**
 * What the run holds and has written, as the steps record it: the rollback reads it to undo, in
 * order, and fs-errors.ts to name the paths in an error. Fields are set when a thing may exist
 * and cleared when it is gone.
 */
export interface BackupTrail {
  dataDirLock?: DataDirLock
  readonly id: string
  /** the bytes a step needed, for an ENOSPC: the files to pack, or to clone */
  needed?: {bytes: number; what: string}
  readonly options: BackupOptions
  /** paths a source made or named (a clone, MO's folder), for fs errors */
  paths: KnownPath[]
  /** what the source made that must go (a clone, MO's folder) */
  release?: () => Promise<void>
  repo?: Repository
  /** set while the service is stopped: starts it again (and is cleared once it was started) */
  restart?: (signal: AbortSignal) => Promise<void>
  /** when the stop command was run (performance.now()), for the time the service was down */
  stoppedAt?: number
  /** releases the repository lock */
  unlock?: Unlock
  /** where the step now running writes, for an error that names no path (a stream's write) */
  writing?: KnownPath
  /** set once this backup's objects may be in the repository */
  wroteObjects: boolean
}
