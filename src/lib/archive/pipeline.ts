/**
 * The write side of the archive: pack → zstd → age → sha256/size tap → output, joined with
 * stream/promises pipeline; and whole-buffer helpers for the small manifest.age.
 *
 * Guarantees: the returned sha256 and size are those of the bytes handed to `output` (what the
 * record will promise); any stage's failure rejects the whole, destroys the other stages, and is
 * reported as the error that started it (a file that changed while read, not the broken pipe it
 * causes). It does not make the output durable or atomic: the repository writer does.
 */
import {Readable, Writable} from 'node:stream'
import {pipeline} from 'node:stream/promises'

import type {
  AgeImplementation,
  DecryptOptions,
  EncryptOptions,
  Implementations,
  Manifest,
  PackProgress,
} from './types.js'

import {BrError} from '../errors.js'
import {createDecryptStream, createEncryptStream} from './age.js'
import {createCompressor} from './compress.js'
import {packArchive, type PackOptions, type ScannedEntry} from './pack.js'
import {HashTap} from './tap.js'

/** The output sees writes of at least this size (a file write or an upload part per MiB, not per 64 KiB). */
const OUTPUT_BATCH = 1024 * 1024

export interface WriteArchiveOptions {
  backupId: string
  encrypt: EncryptOptions
  /** what to pack (see PackOptions.entries) */
  entries: ScannedEntry[]
  impl?: Implementations
  /** zstd level, 1-19 */
  level: number
  manifestBase: PackOptions['manifestBase']
  onProgress?: (p: PackProgress) => void
  /** where the archive goes; ended by writeArchive */
  output: Writable
  root: string
  signal?: AbortSignal
  /** incrementals: files listed in the manifest whose bytes stay in older backups */
  unchanged?: PackOptions['unchanged']
}

export interface WriteArchiveResult {
  /** SHA-256 (hex) of the stored bytes */
  archiveSha256: string
  /** size of the stored bytes */
  archiveSize: number
  manifest: Manifest
  /** file bytes packed (before compression) */
  rawBytes: number
}

export async function writeArchive(options: WriteArchiveOptions): Promise<WriteArchiveResult> {
  const encrypt = await createEncryptStream(options.encrypt, options.impl?.age)
  const compress = createCompressor(options.level, options.impl?.zstd)
  const packed = packArchive(options)
  const tap = new HashTap({batchBytes: OUTPUT_BATCH})
  try {
    await pipeline([packed.stream, compress, encrypt, tap, options.output], {signal: options.signal})
  } catch (error) {
    if (options.signal?.aborted) throw new BrError('interrupted', 'interrupted', {cause: options.signal.reason})
    // A pack error (a file changed while read…) says more than the stream errors it causes.
    await packed.done
    throw error
  }

  return {archiveSha256: tap.sha256, archiveSize: tap.bytes, manifest: await packed.done, rawBytes: packed.rawBytes()}
}

/** Encrypts a small buffer whole (manifest.age); `none` returns the bytes as they are. */
export async function encryptBuffer(
  bytes: Uint8Array,
  encrypt: EncryptOptions,
  impl?: AgeImplementation,
): Promise<Buffer> {
  if (encrypt.type === 'none') return Buffer.from(bytes)
  return collect(Readable.from([Buffer.from(bytes)]), await createEncryptStream(encrypt, impl))
}

/** Decrypts a small buffer whole; null keys (an unencrypted backup) return the bytes as they are. */
export async function decryptBuffer(
  bytes: Uint8Array,
  keys: DecryptOptions | null,
  label?: string,
  impl?: AgeImplementation,
): Promise<Buffer> {
  if (!keys) return Buffer.from(bytes)
  try {
    return await collect(Readable.from([Buffer.from(bytes)]), createDecryptStream(keys, impl))
  } catch (error) {
    if (!label || !(error instanceof BrError)) throw error
    throw new BrError(error.code, `${label}: ${error.message}`, {cause: error.cause, suggestions: error.suggestions})
  }
}

async function collect(source: Readable, stage: NodeJS.ReadWriteStream): Promise<Buffer> {
  const chunks: Buffer[] = []
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk)
      callback()
    },
  })
  await pipeline(source, stage, sink)
  return Buffer.concat(chunks)
}
