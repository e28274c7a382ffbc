/**
 * verify: the restore pipeline with a sink that discards. Full verification decrypts,
 * decompresses and re-hashes every file against the manifest, and the stored bytes against the
 * record; --quick hashes only the stored bytes (no key needed, e.g. on the offsite host).
 *
 * Guarantees: reads only; exit 3 (integrity) names the backup and what did not match.
 */
import {createHash} from 'node:crypto'
import {pipeline} from 'node:stream/promises'

import type {DecryptOptions, Manifest} from '../archive/types.js'
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
  quick: boolean
  repoPath: string
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
          Object.assign(
            ctx,
            await checkBackup(ctx.options.repoPath, ctx.options.id, ctx.options.quick ? null : ctx.options.decrypt),
          )
          report.output(`${ctx.record!.id}: ${formatBytes(ctx.record!.archive.size)} stored`)
        },
        title: 'Check backup',
      },
      {
        async run(ctx, report, signal) {
          for (const record of ctx.members!) {
            const hash = createHash('sha256')
            // eslint-disable-next-line no-await-in-loop
            await pipeline(ctx.repo!.openObjectStream(record.id, record.archive.file, {signal}), hash, {signal})
            if (hash.digest('hex') !== record.archive.sha256) {
              throw integrityError(
                `backup ${record.id}: archive does not match the SHA-256 in its record`,
                'the stored archive is corrupted: use another backup',
              )
            }

            report.output(`${record.id}: sha256 ${record.archive.sha256.slice(0, 16)}… ok`)
          }
        },
        skip: (ctx) => (ctx.options.quick ? false : 'Checked while reading the archive'),
        title: 'Hash the stored archives of the chain',
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
