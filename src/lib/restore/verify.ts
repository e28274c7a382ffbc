/**
 * verify: the restore pipeline with a sink that discards. Full verification decrypts,
 * decompresses and re-hashes every file against the manifest, and the stored bytes against the
 * record; --quick checks only the stored objects, every archive and manifest.age of the chain (no
 * key needed, e.g. on the offsite host). Both check the records against the reader's trust policy.
 *
 * --quick, per object: its size must be the record's; when the record names the store's checksum
 * (storeChecksum, written by an S3 backend) and the store reports that same checksum, the object
 * is the one written, and not a byte of it is read (no egress); otherwise (a filesystem, a store
 * that keeps no checksums, a copy stored with another part layout) it is downloaded and hashed,
 * and the record's sha256 decides. The store's checksum is only trusted as far as the record is:
 * the signature and manifest binding cover it like the sha256.
 *
 * Guarantees: reads only, and takes no lock (it works while a backup is written); exit 3
 * (integrity) names the backup and what did not match. `verifyAll` checks every backup and says
 * which are bad, one line each.
 */
import {createHash} from 'node:crypto'
import {pipeline} from 'node:stream/promises'

import type {DecryptOptions, Manifest} from '../archive/types.js'
import type {RepoAddress} from '../repo/address.js'
import type {TrustPolicy} from '../repo/authenticity.js'
import type {BackupRecord} from '../repo/types.js'
import type {Flow} from '../steps.js'

import {decompressorName} from '../archive/zstd-parallel.js'
import {BrError, ExitCode, type ExitCodeName, integrityError} from '../errors.js'
import {formatBytes} from '../format.js'
import {checkBackup, storedObject} from '../repo/catalog.js'
import {openRepository, type Repository} from '../repo/repository.js'
import {readChainReporting} from './chain.js'

export interface VerifyOptions {
  decrypt: DecryptOptions
  id: string
  onWarning?: (message: string) => void
  /** zstd decompression threads (--parallelism); default: the cores here less one, 1-2 (defaultDecompressThreads) */
  parallelism?: number
  quick: boolean
  /** the repository: a local directory (absolute) or an S3 location with its settings */
  repo: RepoAddress
  trust: TrustPolicy
}

/** How verify --quick checked a stored object: by the store's checksum (nothing read), or by hashing it. */
export type QuickCheck = 'hashed' | 'store checksum'

export interface VerifyContext {
  bytes?: number
  /** --quick: how each backup of the chain was checked, by id; 'hashed' if any of its objects was */
  checkedBy?: Record<string, QuickCheck>
  files?: number
  manifest?: Manifest
  members?: BackupRecord[]
  options: VerifyOptions
  record?: BackupRecord
  repo?: Repository
}

export const newVerifyContext = (options: VerifyOptions): VerifyContext => ({options})

export function verifyFlow(): Flow<VerifyContext> {
  return {
    steps: [
      {
        async run(ctx, report) {
          const {options} = ctx
          Object.assign(
            ctx,
            await checkBackup(options.repo, options.id, options.quick ? null : options.decrypt, {
              onWarning: options.onWarning,
              trust: options.trust,
            }),
          )
          report.output(`${ctx.record!.id}: ${formatBytes(ctx.record!.archive.size)} stored`)
        },
        title: 'Check backup',
      },
      {
        async run(ctx, report, signal) {
          ctx.checkedBy = {}
          for (const record of ctx.members!) {
            const how: QuickCheck[] = []
            for (const [what, object] of [
              ['archive', record.archive],
              ['manifest', record.manifest],
            ] as const) {
              // eslint-disable-next-line no-await-in-loop -- one object after another: a whole archive may be read
              how.push(await checkStoredObject(ctx.repo!, record.id, {...object, what}, signal))
            }

            const by: QuickCheck = how.includes('hashed') ? 'hashed' : 'store checksum'
            ctx.checkedBy[record.id] = by
            report.output(
              by === 'hashed'
                ? `${record.id}: sha256 ${record.archive.sha256.slice(0, 16)}… ok, manifest ok (hashed)`
                : `${record.id}: store checksum ${record.archive.storeChecksum!.slice(7, 23)}… ok, manifest ok (nothing read)`,
            )
          }
        },
        skip: (ctx) => (ctx.options.quick ? false : 'Checked while reading the archive'),
        title: 'Hash the stored objects of the chain',
      },
      {
        async run(ctx, report, signal) {
          const result = await readChainReporting(
            {
              finalManifest: ctx.manifest!,
              keys: ctx.options.decrypt,
              members: ctx.members!,
              parallelism: ctx.options.parallelism,
              repo: ctx.repo!,
              signal,
            },
            report,
          )
          ctx.files = result.files
          ctx.bytes = result.bytes
        },
        skip: (ctx) => (ctx.options.quick ? 'Quick: stored archive only' : false),
        title: 'Decrypt, decompress and re-hash every file of the chain',
      },
    ],
  }
}

export interface VerifyResult {
  bytes: null | number
  /** the backups read: the chain, oldest first */
  chain: string[]
  checked: 'archive sha256' | 'every file'
  /** --quick: how each backup of the chain was checked, by id (absent without --quick) */
  checkedBy?: Record<string, QuickCheck>
  /** the zstd decompression in use (null with --quick: nothing is decompressed) */
  decompressor: null | string
  files: null | number
  id: string
  ok: true
}

export function verifyResult(ctx: VerifyContext): VerifyResult {
  return {
    bytes: ctx.bytes ?? null,
    chain: ctx.members!.map((m) => m.id),
    checked: ctx.options.quick ? 'archive sha256' : 'every file',
    ...(ctx.checkedBy && {checkedBy: ctx.checkedBy}),
    decompressor: ctx.options.quick ? null : decompressorName(undefined, ctx.options.parallelism),
    files: ctx.files ?? null,
    id: ctx.record!.id,
    ok: true,
  }
}

/**
 * One stored object of a backup against its record, for --quick: its size, then the store's
 * checksum if both the record and the store have one and they agree, else its SHA-256 read whole.
 */
async function checkStoredObject(
  repo: Repository,
  id: string,
  object: {file: string; sha256: string; size: number; storeChecksum?: string; what: 'archive' | 'manifest'},
  signal: AbortSignal,
): Promise<QuickCheck> {
  const {what} = object
  const info = await storedObject(repo, id, object)

  if (object.storeChecksum !== undefined && info.checksum === object.storeChecksum) return 'store checksum'
  const hash = createHash('sha256')
  await pipeline(repo.openObjectStream(id, object.file, {signal}), hash, {signal})
  if (hash.digest('hex') !== object.sha256) {
    throw integrityError(
      `backup ${id}: ${what} ${object.file} does not match the SHA-256 in its record`,
      `the stored ${what} is corrupted: use another backup`,
    )
  }

  return 'hashed'
}

/** One backup's outcome in `verify --all`: its result, or what was wrong with it. */
export type VerifyOutcome =
  | (VerifyResult & {error?: undefined})
  | {error: {code: ExitCodeName; exitCode: number; message: string}; id: string; ok: false}

/**
 * Every backup of the repository, oldest first, each verified by `verifyOne`: one bad backup is
 * reported and the next one is checked (a damaged record is bad without being read). Only an
 * interruption, or an error that is not ours (the repository itself gone), stops the run.
 */
export async function verifyAll(
  address: RepoAddress | string,
  verifyOne: (id: string) => Promise<VerifyResult>,
  onOutcome?: (outcome: VerifyOutcome) => void,
): Promise<VerifyOutcome[]> {
  const {damaged, records} = await (await openRepository(address)).scanBackups()
  const bad = new Map(damaged.map((d) => [d.id, d.reason]))
  const ids = [...records.map((r) => r.id), ...bad.keys()].sort()
  const outcomes: VerifyOutcome[] = []
  for (const id of ids) {
    let outcome: VerifyOutcome
    const reason = bad.get(id)
    if (reason === undefined) {
      try {
        // One backup after another: each reads whole archives, and the tree shows one at a time.
        // eslint-disable-next-line no-await-in-loop
        outcome = await verifyOne(id)
      } catch (error) {
        if (!(error instanceof BrError) || error.code === 'interrupted') throw error
        outcome = {error: {code: error.code, exitCode: error.exitCode, message: error.message}, id, ok: false}
      }
    } else {
      outcome = {error: {code: 'integrity', exitCode: ExitCode.integrity, message: reason}, id, ok: false}
    }

    outcomes.push(outcome)
    onOutcome?.(outcome)
  }

  return outcomes
}

/** How a `verify --all` ends: integrity (3) when any backup is corrupt, else as the first failure, else ok. */
export function verifyAllExitCode(outcomes: VerifyOutcome[]): ExitCodeName {
  const failed = outcomes.filter((o) => o.error)
  if (failed.some((o) => o.error!.code === 'integrity')) return 'integrity'
  return failed[0]?.error!.code ?? 'ok'
}
