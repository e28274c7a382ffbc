/**
 * A moctl br repository: moctl-br.json at the root, one key prefix per backup under backups/,
 * in whatever backend its location names (backend-for.ts); it makes no filesystem call itself.
 *
 * Guarantees: a backup is complete exactly when its backup.json exists and parses; listing
 * ignores folders without one (crashed or running backups) and reports damaged records as
 * integrity errors instead of skipping them silently; deleting removes backup.json first, so a
 * half-deleted backup is never listed as complete. Ids may be given as unique prefixes, or as
 * `latest`: the newest backup whose record reads (of a data dir, or of the repository; newer ones
 * whose record does not read are named in a warning). It does
 * not lock: writers take lock.ts's lock.
 */
import {PassThrough, type Readable, type Writable} from 'node:stream'

import type {RepoAddress} from './address.js'

import {BrError, usageError} from '../errors.js'
import {TOOL} from '../tool.js'
import {backendFor} from './backend-for.js'
import {type LoadOptions, MAX_MANIFEST_BYTES, type ObjectInfo, type RepoBackend, type SavedObject} from './backend.js'
import {backupIdOf, backupPrefix, BACKUPS_PREFIX, objectKey, RECORD_FILE, REPO_INFO_KEY} from './paths.js'
import {parseRecord} from './record.js'
import {type BackupRecord, REPO_FORMAT, type RepoInfo} from './types.js'

/** A stream into one object of a backup, saved whole on commit, or not at all. */
export interface AtomicWriter {
  abort(): Promise<void>
  /** Resolves once the object is whole and durable, to the store's checksum of it (SavedObject). */
  commit(): Promise<SavedObject>
  stream: Writable
}

/** The object probeWrite writes and removes. */
const PROBE_FILE = '.write-probe'

export async function openRepository(
  repo: RepoAddress | string,
  options: {create?: boolean} = {},
): Promise<Repository> {
  const backend = backendFor(repo)
  const path = typeof repo === 'string' ? repo : repo.location
  // Every command opens the repository here: a file in its path, or no permission, is said once, plainly.
  const {exists} = await backend.connect()
  if (!exists || !(await backend.stat(REPO_INFO_KEY))) {
    if (!options.create) {
      throw exists
        ? usageError(`${path} is not a moctl br repository (no ${REPO_INFO_KEY})`, 'check --path')
        : usageError(
            `repository ${path} does not exist`,
            'check --path; `moctl br backup --path DIR` creates a repository',
          )
    }

    if (exists && ((await backend.list('')).length > 0 || (await backend.listLeftovers('')).length > 0)) {
      throw usageError(
        `${path} is not empty and is not a moctl br repository`,
        'pass an empty or new directory as --path',
      )
    }

    const info: RepoInfo = {
      createdAt: new Date().toISOString(),
      format: REPO_FORMAT,
      tool: `${TOOL.name} ${TOOL.version}`,
    }
    await backend.save(REPO_INFO_KEY, Buffer.from(JSON.stringify(info, null, 2) + '\n'))
  }

  let info: RepoInfo
  try {
    info = JSON.parse((await backend.load(REPO_INFO_KEY)).toString('utf8'))
  } catch {
    throw new BrError('integrity', `${path}/${REPO_INFO_KEY} is damaged`, {
      suggestions: ['restore it from another copy of the repository'],
    })
  }

  if (info.format !== REPO_FORMAT) {
    throw usageError(
      `repository ${path} has format ${info.format}; this version reads format ${REPO_FORMAT}`,
      'use a matching moctl br version',
    )
  }

  return new Repository(backend, path)
}

/** The id that names the newest complete backup (of the data dir, when the command has one). */
export const LATEST = 'latest'

export interface ResolveOptions {
  /** `latest` means the newest backup of this data dir (restore's target, backup's --data-dir) */
  dataDir?: string
  /** told when `latest` passes over newer backups whose record does not read */
  onWarning?: (message: string) => void
}

/** A backup whose backup.json exists but does not read (bad JSON, bad shape, another id). */
export interface DamagedBackup {
  id: string
  reason: string
}

export class Repository {
  constructor(
    readonly backend: RepoBackend,
    readonly path: string,
  ) {}

  /** Removes backup.json first: from then on the backup is incomplete, never half-listed. */
  async deleteBackup(id: string): Promise<void> {
    await this.backend.remove(objectKey(id, RECORD_FILE))
    await this.backend.removePrefix(backupPrefix(id))
  }

  describe(): string {
    return this.backend.describe()
  }

  /** A backup by id, unique id prefix, or `latest` (see resolveId). */
  async getBackup(idOrPrefix: string, options: ResolveOptions = {}): Promise<BackupRecord> {
    return this.readRecord(await this.resolveId(idOrPrefix, options))
  }

  /** Complete backups whose record reads, oldest first (UUIDv7 ids sort by time); scanBackups also names the damaged ones. */
  async listBackups(): Promise<BackupRecord[]> {
    return (await this.scanBackups()).records
  }

  /**
   * The backups under backups/ that have objects or leftovers but no backup.json (crashed or still
   * running ones), by id, with how long since any of their files was last modified.
   */
  async listIncomplete(): Promise<{ageMs: number; id: string}[]> {
    // What a crashed backup left may be objects (a whole archive) or only leftovers (a killed save).
    const [objects, leftovers] = await Promise.all([
      this.backend.list(`${BACKUPS_PREFIX}/`),
      this.backend.listLeftovers(`${BACKUPS_PREFIX}/`),
    ])
    const complete = new Set(completeIdsOf(objects))
    const found = [...objects, ...leftovers]
    const touched = new Map<string, number>()
    for (const {key, modifiedMs} of found) {
      const id = backupIdOf(key)
      if (id === undefined || complete.has(id)) continue
      touched.set(id, Math.max(touched.get(id) ?? 0, modifiedMs))
    }

    return [...touched]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([id, modifiedMs]) => ({ageMs: Math.max(0, Date.now() - modifiedMs), id}))
  }

  /** A backup's object as the store has it (size, and the store's checksum where it keeps one), or null. */
  async objectInfo(id: string, file: string): Promise<null | ObjectInfo> {
    return this.backend.stat(objectKey(id, file))
  }

  openObjectStream(id: string, file: string, options: {signal?: AbortSignal} = {}): Readable {
    return this.backend.open(objectKey(id, file), options)
  }

  /**
   * A stream to write backup `id`'s object into, saved atomically by the backend: `commit` ends it
   * and resolves once the object is whole and durable; `abort` leaves no object.
   */
  async openWriter(id: string, file: string): Promise<AtomicWriter> {
    const stream = new PassThrough({highWaterMark: 1024 * 1024})
    const abort = new AbortController()
    const saved = this.backend.save(objectKey(id, file), stream, {signal: abort.signal})
    // A save that fails before it reads (mkdir refused: ENOSPC, EACCES, a file in the way) would
    // leave the stream unread, and its writer waiting on backpressure forever: its failure fails
    // the stream, so the pipeline into it rejects at once; commit reports the save's own error.
    saved.catch((error: unknown) => stream.destroy(error as Error))
    // Before its writer pipes into it the stream has no listener: its error, told by the pipeline
    // and by commit, must not be an uncaught exception meanwhile.
    stream.on('error', () => {})
    let settled = false
    return {
      async abort() {
        if (settled) return
        settled = true
        abort.abort()
        stream.destroy()
        await saved.catch(() => {})
      },
      async commit(): Promise<SavedObject> {
        if (settled) throw new Error(`writer for ${objectKey(id, file)} already settled`)
        settled = true
        if (!stream.writableEnded) stream.end()
        return saved
      },
      stream,
    }
  }

  /**
   * Writes and removes a small object where backup `id`'s objects will go: a repository that
   * cannot take them (read-only, no permission, a file in the way) fails now, before a backup
   * stops anything. A run killed in between leaves a folder without a record: incomplete, never
   * listed, removed by prune and cleanup.
   */
  async probeWrite(id: string): Promise<void> {
    try {
      await this.backend.save(objectKey(id, PROBE_FILE), Buffer.from('moctl br write probe\n'))
    } finally {
      await this.backend.removePrefix(backupPrefix(id))
    }
  }

  /** The last write of a backup: from now on it is complete and listed. */
  async publishRecord(record: BackupRecord): Promise<void> {
    await this.backend.save(objectKey(record.id, RECORD_FILE), Buffer.from(JSON.stringify(record, null, 2) + '\n'))
  }

  /** A backup's object, read whole: at most `maxBytes` (what its record says), and never beyond MAX_MANIFEST_BYTES. */
  async readObject(id: string, file: string, options: LoadOptions = {}): Promise<Buffer> {
    const maxBytes = Math.min(options.maxBytes ?? MAX_MANIFEST_BYTES, MAX_MANIFEST_BYTES)
    return this.backend.load(objectKey(id, file), {maxBytes})
  }

  /**
   * The full id of a complete backup (its record may be damaged) from an id or unique prefix; or
   * LATEST: the newest complete backup whose record reads (a damaged one never counts), of
   * `dataDir` when the command has one, else of the whole repository.
   */
  async resolveId(idOrPrefix: string, options: ResolveOptions = {}): Promise<string> {
    if (idOrPrefix === LATEST) return this.latestId(options)
    const ids = await this.completeIds()
    const matches = ids.filter((id) => id.startsWith(idOrPrefix))
    if (matches.length === 0 || idOrPrefix.length === 0) {
      throw usageError(
        `backup ${idOrPrefix} not found in ${this.path}`,
        `\`moctl br list --path ${this.path}\` shows the backups there`,
      )
    }

    if (matches.length > 1 && !matches.includes(idOrPrefix)) {
      throw usageError(
        `backup id prefix ${idOrPrefix} is ambiguous: ${matches.join(', ')}`,
        'give more characters of the id',
      )
    }

    return matches.includes(idOrPrefix) ? idOrPrefix : matches[0]
  }

  /**
   * Every backup with a record, oldest first: the ones that parse, and the damaged ones with
   * why, so that one bad backup.json neither breaks nor silently vanishes from list and prune.
   */
  async scanBackups(): Promise<{damaged: DamagedBackup[]; records: BackupRecord[]}> {
    const ids = await this.completeIds()
    const read = await Promise.allSettled(ids.map((id) => this.readRecord(id)))
    const damaged: DamagedBackup[] = []
    const records: BackupRecord[] = []
    for (const [i, r] of read.entries()) {
      if (r.status === 'fulfilled') records.push(r.value)
      else if (r.reason instanceof BrError && r.reason.code === 'integrity')
        damaged.push({id: ids[i], reason: r.reason.message})
      else throw r.reason
    }

    return {damaged, records}
  }

  async writeObject(id: string, file: string, bytes: Uint8Array): Promise<SavedObject> {
    return this.backend.save(objectKey(id, file), bytes)
  }

  private async completeIds(): Promise<string[]> {
    return completeIdsOf(await this.backend.list(`${BACKUPS_PREFIX}/`))
  }

  private async latestId({dataDir, onWarning}: ResolveOptions): Promise<string> {
    const {damaged, records} = await this.scanBackups()
    // A repository that holds the backups of one data dir only: its newest is latest wherever it
    // is restored (a disaster-recovery host may put mo-data elsewhere).
    const oneSource = new Set(records.map((r) => r.source.dataDir)).size === 1
    const latest = records.findLast((r) => dataDir === undefined || oneSource || r.source.dataDir === dataDir)
    if (!latest) {
      throw dataDir === undefined
        ? usageError(`no complete backup in ${this.path}: nothing is latest`, 'take a backup first (`moctl br backup`)')
        : usageError(
            `no complete backup of ${dataDir} in ${this.path}: nothing is latest`,
            `\`moctl br list --path ${this.path}\` shows the backups there: name one by its id`,
          )
    }

    // A newer backup whose record does not read (damaged, or written by a newer version) may be
    // the one meant: say so, rather than let an older one pass for the latest unseen.
    const newer = damaged.filter((d) => d.id > latest.id)
    if (newer.length > 0) {
      const shown = newer.slice(-3).map((d) => d.reason)
      const more = newer.length > shown.length ? ` (and ${newer.length - shown.length} more)` : ''
      onWarning?.(
        `latest is ${latest.id}, but ${newer.length === 1 ? 'a newer backup' : `${newer.length} newer backups`} could not be read: ${shown.join('; ')}${more}; name a backup by its id to use another`,
      )
    }

    return latest.id
  }

  private async readRecord(id: string): Promise<BackupRecord> {
    return parseRecord((await this.backend.load(objectKey(id, RECORD_FILE))).toString('utf8'), id)
  }
}

/** The backups of a listing of backups/ that have a record. */
function completeIdsOf(objects: ObjectInfo[]): string[] {
  // A record that is not a regular file (a FIFO) is listed: its backup counts, and reads as damaged.
  return objects
    .filter(({key}) => key === objectKey(backupIdOf(key) ?? '', RECORD_FILE))
    .map(({key}) => backupIdOf(key)!)
}
