/**
 * verify: the restore pipeline with a sink that discards. Full verification decrypts,
 * decompresses and re-hashes every file against the manifest, and the stored bytes against the
 * record; --quick hashes only the stored objects, every archive and manifest.age of the chain (no
 * key needed, e.g. on the offsite host). Both check the records against the reader's trust policy.
 *
 * Guarantees: reads only; exit 3 (integrity) names the backup and what did not match.
 */
import {createHash} from 'node:crypto'
import {pipeline} from 'node:stream/promises'

import type {DecryptOptions, Manifest} from '../archive/types.js'
import type {TrustPolicy} from '../repo/authenticity.js'
import type {Repository} from '../repo/repository.js'
import type {BackupRecord} from '../repo/types.js'
import type {Flow} from '../steps.js'

import {integrityError} from '../errors.js'
import {formatBytes} from '../format.js'
import {readChainReporting} from './chain.js'
import {checkBackup} from './check.js'

export interface VerifyOptions {
  decrypt: DecryptOptions
  id: string
  onWarning?: (message: string) => void
  quick: boolean
  repoPath: string
  trust: TrustPolicy
}

export interface VerifyContext {
  bytes?: number
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
            await checkBackup(options.repoPath, options.id, options.quick ? null : options.decrypt, {
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
          for (const record of ctx.members!) {
            for (const [what, file, sha256] of [
              ['archive', record.archive.file, record.archive.sha256],
              ['manifest', record.manifest.file, record.manifest.sha256],
            ]) {
              const hash = createHash('sha256')
              // eslint-disable-next-line no-await-in-loop
              await pipeline(ctx.repo!.openObjectStream(record.id, file, {signal}), hash, {signal})
              if (hash.digest('hex') !== sha256) {
                throw integrityError(
                  `backup ${record.id}: ${what} ${file} does not match the SHA-256 in its record`,
                  `the stored ${what} is corrupted: use another backup`,
                )
              }
            }

            report.output(`${record.id}: sha256 ${record.archive.sha256.slice(0, 16)}… ok, manifest ok`)
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
  files: null | number
  id: string
  ok: true
}

export function verifyResult(ctx: VerifyContext): VerifyResult {
  return {
    bytes: ctx.bytes ?? null,
    chain: ctx.members!.map((m) => m.id),
    checked: ctx.options.quick ? 'archive sha256' : 'every file',
    files: ctx.files ?? null,
    id: ctx.record!.id,
    ok: true,
  }
}
