import {createHash} from 'node:crypto'
/**
 * Copies backups from one repository to another (a local one to an offsite bucket, or back),
 * without decrypting: the objects are the ciphertext the backup wrote, streamed from source to
 * target, and backup.json is copied byte for byte, so its signature and its binding to
 * manifest.age still hold in the target, and the target's readers verify it with the same keys.
 *
 * Guarantees:
 * - a backup is copied with every backup of its chain the target lacks, oldest first, each one
 *   complete (its record written) before the next one starts; nothing is written before the whole
 *   chain was checked in the source (present, consistent, signatures that hold) and in the target
 *   (no other record under one of its ids);
 * - every object's SHA-256 and size are computed as it streams and checked against the source's
 *   record before the target's backend keeps it (the check fails the stream, so the save leaves
 *   no object), and the record is written last: a mismatch, a failure or an abort leaves nothing
 *   listed in the target, and what was written of that backup is removed;
 * - a backup already in the target with the same record is skipped; under another record it is
 *   refused (integrity) and never overwritten;
 * - the target's writer lock is held for the copy, and checked before each record is published;
 *   the source is only read (no lock: a prune of the source meanwhile makes the copy fail
 *   cleanly, naming what went missing);
 * - what a killed copy left under a backup's id in the target (objects without a record) is
 *   removed by the next copy of that backup, which completes it.
 * - the record keeps the source store's checksums (archive/manifest.storeChecksum) verbatim: the
 *   target may keep another one (another store, another part layout, none on a filesystem), and
 *   that is fine: verify --quick then hashes the object against the record's sha256.
 * Not: authenticity against a trusted signer (the target's readers decide that, as verify does),
 * nor deleting anything in the source. Objects the record does not name are not copied (a
 * warning says so): a backup is its record, its archive and its manifest.
 */
import {performance} from 'node:perf_hooks'
import {pipeline, type Readable, Transform, type TransformCallback} from 'node:stream'

import type {StepProgress} from '../steps.js'

import {BrError, integrityError, isBrError, throwIfAborted, usageError} from '../errors.js'
import {formatBytes} from '../format.js'
import {overlap} from '../path-overlap.js'
import {parseS3Location, type RepoAddress} from './address.js'
import {canonicalJson, signatureState} from './authenticity.js'
import {isMissing, isRetained} from './backend.js'
import {resolveChain} from './catalog.js'
import {acquireLock, type Unlock} from './lock.js'
import {backupPrefix, objectKey, RECORD_FILE} from './paths.js'
import {parseRecord} from './record.js'
import {openRepository, type Repository} from './repository.js'
import {type BackupRecord} from './types.js'

export interface CopyOptions {
  /** copy every backup of the source the target lacks (with `ids` unset) */
  all?: boolean
  from: RepoAddress | string
  /** backups to copy, each an id, a unique prefix or `latest` (with their chains) */
  ids?: string[]
  /** a line worth keeping: a backup copied or skipped */
  onOutput?: (line: string) => void
  /** bytes and objects copied so far, of the copy's total */
  onProgress?: (progress: StepProgress) => void
  onWarning?: (message: string) => void
  signal?: AbortSignal
  to: RepoAddress | string
  /** how long to wait for the target's writer lock; 0 (default): fail at once (exit 4) */
  waitLockSeconds?: number
}

export interface CopiedBackup {
  /** archive, manifest and record */
  bytes: number
  id: string
  type: BackupRecord['type']
}

export interface CopyResult {
  /** bytes written to the target */
  bytes: number
  copied: CopiedBackup[]
  /** --all: backups of the source that could not be copied, and why (exit 3); the others were copied */
  failed: {id: string; reason: string}[]
  from: string
  ms: number
  /** already in the target with the same record */
  skipped: string[]
  to: string
}

/** What every step of one copy works with. */
interface CopyRun {
  options: CopyOptions
  result: CopyResult
  source: Repository
  target: Repository
  unlock: Unlock
}

/** One backup the target lacks: its record as the source has it, parsed and as bytes. */
interface Planned {
  raw: Buffer
  record: BackupRecord
}

/** The objects a backup is made of besides its record, in the order they are copied. */
const objectsOf = (record: BackupRecord) => [
  {file: record.archive.file, sha256: record.archive.sha256, size: record.archive.size, what: 'archive'},
  {file: record.manifest.file, sha256: record.manifest.sha256, size: record.manifest.size, what: 'manifest'},
]

export async function copyBackups(options: CopyOptions): Promise<CopyResult> {
  const started = performance.now()
  const ids = options.ids ?? []
  if (Boolean(options.all) === ids.length > 0) throw new Error('copyBackups: give either ids or all')
  const fromLocation = locationOf(options.from)
  const toLocation = locationOf(options.to)
  await checkDistinct(options.from, options.to)
  const source = await openNamed(options.from, '--from', {})
  const result: CopyResult = {bytes: 0, copied: [], failed: [], from: fromLocation, ms: 0, skipped: [], to: toLocation}
  const finish = () => ({...result, ms: Math.round(performance.now() - started)})

  const wanted: BackupRecord[] = []
  if (options.all) {
    const {damaged, records} = await source.scanBackups()
    for (const d of damaged) fail(result, options, d.id, `its backup.json in ${fromLocation} is damaged: ${d.reason}`)
    wanted.push(...records)
  } else {
    for (const id of ids) {
      // eslint-disable-next-line no-await-in-loop -- a few ids, each resolved against the listing
      wanted.push(await source.getBackup(id, {onWarning: options.onWarning}))
    }
  }

  if (wanted.length === 0) {
    options.onOutput?.(`nothing to copy: ${fromLocation} has no complete backup`)
    return finish()
  }

  throwIfAborted(options.signal)
  const target = await openNamed(options.to, '--to', {create: true})
  const unlock = await acquireLock(target, {
    command: 'br copy',
    onWarning: options.onWarning,
    signal: options.signal,
    waitSeconds: options.waitLockSeconds,
  })
  try {
    const run: CopyRun = {options, result, source, target, unlock}
    const plan = await planCopy(run, wanted)
    if (plan.length === 0) {
      options.onOutput?.(`nothing to copy: ${toLocation} has every backup asked for`)
      return finish()
    }

    await copyPlanned(run, plan)
    return finish()
  } finally {
    await unlock()
  }
}

/**
 * Which backups to copy, oldest first, each after the backups it is built on: every member of the
 * wanted backups' chains that the target lacks, checked in the source (chain present and
 * consistent, objects of the right size, record readable and its signature holding) and against
 * the target (no other record under its id). With one id, any problem is thrown before anything
 * is written; with --all, a backup that cannot be copied is named in `failed` and the rest go on.
 */
async function planCopy({options, result, source, target}: CopyRun, wanted: BackupRecord[]): Promise<Planned[]> {
  const planned = new Map<string, Planned>()
  const skipped = new Set<string>()
  for (const record of [...wanted].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    if (planned.has(record.id) || skipped.has(record.id)) continue
    try {
      // eslint-disable-next-line no-await-in-loop -- one chain after another, few backups
      const members = await resolveChain(source, record)
      const chainPlan: Planned[] = []
      for (const member of members) {
        if (planned.has(member.id) || skipped.has(member.id)) continue
        // eslint-disable-next-line no-await-in-loop
        const raw = await readSourceRecord(source, member)
        // eslint-disable-next-line no-await-in-loop
        if (await presentInTarget(target, member)) skipped.add(member.id)
        else chainPlan.push({raw, record: member})
      }

      // Only a chain that can be completed is planned: none of it, or all it lacks.
      for (const p of chainPlan) planned.set(p.record.id, p)
    } catch (error) {
      if (!options.all || !isBrError(error) || error.code !== 'integrity') throw error
      fail(result, options, record.id, error.message)
    }
  }

  for (const id of [...skipped].sort()) {
    result.skipped.push(id)
    options.onOutput?.(`skipped ${id}: already in ${target.path}`)
  }

  return [...planned.values()]
}

/** Copies the planned backups in order; with --all, one that fails its checks does not stop the others. */
async function copyPlanned(run: CopyRun, plan: Planned[]): Promise<void> {
  const {options, result} = run
  const progress: StepProgress = {
    bytesDone: 0,
    bytesTotal: plan.reduce((sum, p) => sum + p.record.archive.size + p.record.manifest.size + p.raw.length, 0),
    filesDone: 0,
    filesTotal: plan.length * 3,
  }
  options.onProgress?.({...progress})
  const failed = new Set<string>()
  for (const {raw, record} of plan) {
    const brokenBase = record.chain.find((id) => failed.has(id))
    if (brokenBase) {
      failed.add(record.id)
      fail(result, options, record.id, `backup ${brokenBase}, which it is built on, could not be copied`)
      continue
    }

    try {
      // eslint-disable-next-line no-await-in-loop -- oldest first: a base is complete before what builds on it
      const bytes = await copyOne(run, {raw, record}, (n, objects) => {
        progress.bytesDone += n
        progress.filesDone += objects
        options.onProgress?.({...progress})
      })
      result.copied.push({bytes, id: record.id, type: record.type})
      result.bytes += bytes
      options.onOutput?.(`copied ${record.id} (${record.type}, ${formatBytes(bytes)})`)
    } catch (error) {
      if (!options.all || !isBrError(error) || error.code !== 'integrity') throw error
      failed.add(record.id)
      fail(result, options, record.id, error.message)
    }
  }
}

/**
 * One backup: what a killed copy left under its id removed, its objects streamed and checked,
 * then its record. Any failure removes what was written of it (its record never was).
 */
async function copyOne(
  {options, source, target, unlock}: CopyRun,
  {raw, record}: Planned,
  onBytes: (bytes: number, objects: number) => void,
): Promise<number> {
  const {id} = record
  await unlock.checkHeld(`copying backup ${id}`)
  // We hold the lock and the target has no record under this id: whatever is there is a dead run's.
  await removeUnlisted(target, id, options)
  await warnOfUnnamedObjects(source, record, options)
  let bytes = 0
  try {
    for (const object of objectsOf(record)) {
      // eslint-disable-next-line no-await-in-loop -- one object after another, each streamed
      bytes += await copyObject({options, source, target}, record, object, (n) => onBytes(n, 0))
      onBytes(0, 1)
    }

    // A run whose lock was taken over publishes nothing: the new holder may prune this as a leftover.
    await unlock.checkHeld(`publishing backup ${id}`)
    await target.backend.save(objectKey(id, RECORD_FILE), raw, {signal: options.signal})
  } catch (error) {
    await removeUnlisted(target, id, options)
    throw error
  }

  onBytes(raw.length, 1)
  return bytes + raw.length
}

/** Streams one object from source to target through a check of its size and SHA-256; resolves to its size. */
async function copyObject(
  {options, source, target}: Pick<CopyRun, 'options' | 'source' | 'target'>,
  record: BackupRecord,
  object: {file: string; sha256: string; size: number; what: string},
  onBytes: (n: number) => void,
): Promise<number> {
  const {signal} = options
  const key = objectKey(record.id, object.file)
  const check = new CheckTap({...object, from: source.path, id: record.id}, onBytes)
  const input: Readable = source.backend.open(key, {signal})
  // The check fails the stream the target saves from: a mismatch is never kept.
  pipeline(input, check, () => {})
  try {
    await target.backend.save(key, check, {signal})
  } catch (error) {
    // A save that failed before reading leaves the source open: close it.
    check.destroy()
    if (isMissing(error)) {
      throw new BrError(
        'error',
        `backup ${record.id}: ${object.what} ${object.file} is no longer in ${source.path} (deleted or pruned while it was copied): not copied`,
        {suggestions: [`\`moctl br list --path ${source.path}\` shows what is there now`]},
      )
    }

    throw error
  }

  // The tap failed the stream otherwise; checked again here, where the result is decided.
  if (check.bytes !== object.size || check.sha256 !== object.sha256) throw check.mismatch()
  return check.bytes
}

/**
 * Hashes and counts what streams past, and fails the stream as soon as there are more bytes than
 * the record says, or at its end when there were fewer or the SHA-256 differs.
 */
class CheckTap extends Transform {
  bytes = 0
  sha256 = ''
  private readonly hash = createHash('sha256')

  constructor(
    private readonly object: {file: string; from: string; id: string; sha256: string; size: number; what: string},
    private readonly onBytes: (n: number) => void,
  ) {
    super({highWaterMark: 1024 * 1024})
  }

  override _flush(callback: TransformCallback): void {
    this.sha256 = this.hash.digest('hex')
    callback(this.bytes === this.object.size && this.sha256 === this.object.sha256 ? null : this.mismatch())
  }

  override _transform(chunk: Buffer, _encoding: string, callback: TransformCallback): void {
    this.hash.update(chunk)
    this.bytes += chunk.length
    this.onBytes(chunk.length)
    callback(this.bytes > this.object.size ? this.mismatch() : null, chunk)
  }

  mismatch(): BrError {
    const {file, from, id, sha256, size, what} = this.object
    const found =
      this.bytes === size
        ? `its SHA-256 is ${this.sha256.slice(0, 16)}…, its record says ${sha256.slice(0, 16)}…`
        : this.sha256
          ? `it is ${this.bytes} bytes, its record says ${size}`
          : `it is larger than the ${size} bytes its record says`
    return integrityError(
      `backup ${id}: ${what} ${file} in ${from} does not match its record (${found}): not copied`,
      `the source's copy is damaged: \`moctl br verify ${id} --quick --path ${from}\` checks it; copy another backup`,
    )
  }
}

/** The source's backup.json as bytes (what is copied), checked to be the record the chain was read from. */
async function readSourceRecord(source: Repository, record: BackupRecord): Promise<Buffer> {
  const raw = await source.backend.load(objectKey(record.id, RECORD_FILE))
  if (canonicalJson(parseRecord(raw.toString('utf8'), record.id)) !== canonicalJson(record)) {
    throw new BrError('error', `backup ${record.id}: its backup.json in ${source.path} changed while it was read`, {
      suggestions: ['something writes the source repository: run the copy again once it is done'],
    })
  }

  if (signatureState(record) === 'invalid') {
    throw integrityError(
      `backup ${record.id}: its signature in ${source.path} does not match its backup.json (the record was changed after it was written): not copied`,
      `\`moctl br verify ${record.id} --path ${source.path}\` says more; copy another backup`,
    )
  }

  for (const {file, what} of objectsOf(record)) {
    // A record names its objects by file name in its own folder: never a path elsewhere.
    if (!/^[\w.-]+$/.test(file) || file === '.' || file === '..' || file === RECORD_FILE) {
      throw integrityError(
        `backup ${record.id}: its record names ${what} ${JSON.stringify(file)}, not a file name: not copied`,
      )
    }
  }

  return raw
}

/** True when the target has this backup under the same record; an integrity error when under another. */
async function presentInTarget(target: Repository, record: BackupRecord): Promise<boolean> {
  const key = objectKey(record.id, RECORD_FILE)
  if (!(await target.backend.stat(key))) return false
  let theirs: BackupRecord | undefined
  try {
    theirs = parseRecord((await target.backend.load(key)).toString('utf8'), record.id)
  } catch (error) {
    if (!isBrError(error) || error.code !== 'integrity') throw error
  }

  if (theirs && canonicalJson(theirs) === canonicalJson(record)) return true
  throw integrityError(
    `backup ${record.id} is already in ${target.path} with ${theirs ? 'another' : 'a damaged'} record: not overwritten`,
    `compare the two backup.json files; \`moctl br delete ${record.id} --path ${target.path}\` removes the target's copy if it is the wrong one`,
  )
}

/** Removes what is under a backup's id in the target but no record: a dead or failed run's objects. */
async function removeUnlisted(target: Repository, id: string, options: CopyOptions): Promise<void> {
  try {
    await target.backend.removePrefix(backupPrefix(id))
  } catch (error) {
    // Objects under retention stay (new versions are written over them); they are not listed.
    if (!isRetained(error)) throw error
    options.onWarning?.(
      `backup ${id}: objects a failed copy wrote in ${target.path} are under object lock${error.retainUntilMs ? ` until ${new Date(error.retainUntilMs).toISOString()}` : ''}: they stay, unlisted`,
    )
  }
}

/** A warning for objects in the source's backup folder that its record does not name: they are not copied. */
async function warnOfUnnamedObjects(source: Repository, record: BackupRecord, options: CopyOptions): Promise<void> {
  const named = new Set([RECORD_FILE, ...objectsOf(record).map((o) => o.file)].map((f) => objectKey(record.id, f)))
  const others = (await source.backend.list(backupPrefix(record.id))).filter((o) => !named.has(o.key))
  if (others.length > 0) {
    options.onWarning?.(
      `backup ${record.id}: ${others.map((o) => o.key).join(', ')} in ${source.path} ${others.length > 1 ? 'are' : 'is'} not named by its record: not copied`,
    )
  }
}

function fail(result: CopyResult, options: CopyOptions, id: string, reason: string): void {
  result.failed.push({id, reason})
  options.onOutput?.(`failed ${id}: ${reason}`)
}

const locationOf = (repo: RepoAddress | string): string => (typeof repo === 'string' ? repo : repo.location)

/** Opens a repository the user named with `flag`; its usage errors name that flag, not --path. */
async function openNamed(repo: RepoAddress | string, flag: string, options: {create?: boolean}): Promise<Repository> {
  try {
    return await openRepository(repo, options)
  } catch (error) {
    if (!isBrError(error) || error.code !== 'usage') throw error
    throw usageError(
      error.message,
      flag === '--from'
        ? 'check --from: the repository to copy from'
        : 'check --to: an existing repository, or an empty or new location to create one in',
    )
  }
}

/**
 * Refuses a copy into the source itself, or into a repository inside it (or around it); exported
 * so that the command says so before its task tree starts.
 */
export async function checkDistinct(from: RepoAddress | string, to: RepoAddress | string): Promise<void> {
  const a = typeof from === 'string' ? {location: from} : from
  const b = typeof to === 'string' ? {location: to} : to
  const sa = a.s3 ?? parseS3Location(a.location)
  const sb = b.s3 ?? parseS3Location(b.location)
  const same =
    !sa && !sb
      ? await overlap(a.location, b.location)
      : sa && sb && sa.bucket === sb.bucket && a.s3?.endpoint === b.s3?.endpoint
        ? prefixOverlap(sa.prefix, sb.prefix)
        : null
  if (same) {
    throw usageError(
      same === 'same'
        ? `--from and --to are the same repository (${a.location}): nothing to copy`
        : same === 'inside'
          ? `--from ${a.location} is inside --to ${b.location}: one repository may not hold another`
          : `--to ${b.location} is inside --from ${a.location}: one repository may not hold another`,
      'pass another location as --to',
    )
  }
}

/** How two key prefixes of one bucket overlap, as path-overlap.ts says it of directories. */
function prefixOverlap(a: string, b: string): 'contains' | 'inside' | 'same' | null {
  if (a === b) return 'same'
  if (a.startsWith(b)) return 'inside'
  return b.startsWith(a) ? 'contains' : null
}
