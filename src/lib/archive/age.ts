/**
 * age v1 encryption and decryption as Node streams (C2SP age: X25519 recipients or one scrypt
 * passphrase), and whole-buffer helpers for the small manifest.age. This is the entry point; the
 * work is split by concern:
 *   age-header.ts   the header, by typage (age-encryption): built around a file key we see, opened
 *   age-x25519.ts   the header for X25519 recipients (age1…), and their identities, on node:crypto
 *   age-open.ts     headers opened for X25519 identities and passphrases: no typage to import
 *   age-payload.ts  the STREAM payload (HKDF key, 64 KiB ChaCha20-Poly1305 chunks) on node:crypto
 *   age-scrypt.ts   the passphrase stanza on node:crypto's scrypt, its work factor an option
 *   age-typage.ts   everything through typage instead, when `impl` says 'typage'
 *
 * Guarantees: output is plain age v1 that `age -d` and typage decrypt; both implementations read
 * each other's and age's files; every failure to decrypt is an integrity BrError with a plain
 * message (no identity matches, truncated, tampered); no plaintext leaves the native decryptor
 * before its chunk has authenticated. The implementation and the scrypt work factor are what the
 * caller passes (native, 2^18 by default), never what the environment says. The native path
 * imports typage only to write a passphrase header or to recipients of other types, and to read
 * with a post-quantum identity (prepareDecrypt imports it before such a read). It does not:
 * handle armor or plugins, or tell a cut inside the last chunk from tampering (the caller's size
 * check against the record does that).
 */
import {randomBytes} from 'node:crypto'
import {type Duplex, PassThrough, Readable, Writable} from 'node:stream'
import {pipeline} from 'node:stream/promises'

import type {AgeImplementation, DecryptOptions, EncryptOptions} from './types.js'

import {BrError, labelled, usageError} from '../errors.js'
import {
  addRecipients,
  checkKeysGiven,
  headerError,
  loadedTypage,
  loadTypage,
  makeDecrypter,
  makeHeader,
  NONCE,
  parseIdentity,
  x25519Keys,
} from './age-header.js'
import {openHeader, type StanzaIdentity} from './age-open.js'
import {DecryptStream, EncryptStream, payloadKey} from './age-payload.js'
import {ScryptIdentity, ScryptRecipient, scryptWorkFactor} from './age-scrypt.js'
import {typageDecrypt, typageEncrypt} from './age-typage.js'
import {x25519Header, X25519Identity} from './age-x25519.js'

export {
  checkRecipients,
  generateIdentity,
  identityToRecipient,
  loadTypage,
  NO_IDENTITY,
  TAMPERED,
  TRUNCATED,
} from './age-header.js'
export type {AgeImplementation} from './types.js'

/** The implementation used when the caller names none. */
export const DEFAULT_AGE: AgeImplementation = 'native'

/**
 * A stream that age-encrypts what is written to it. `{type: 'none'}` gives a pass-through, so a
 * pipeline keeps its shape for unencrypted (--no-encrypt) archives.
 */
export async function createEncryptStream(
  opts: EncryptOptions,
  impl: AgeImplementation = DEFAULT_AGE,
): Promise<Duplex> {
  if (opts.type === 'none') return new PassThrough()
  if (opts.type === 'passphrase' && opts.passphrase === '') throw usageError('the passphrase is empty')
  const logN = scryptWorkFactor(opts.type === 'passphrase' ? opts.scryptLogN : undefined)
  if (impl === 'typage') return typageEncrypt(opts, logN)

  // A scrypt stanza must stand alone in its header: it reports the file key as it wraps it.
  let wrapped: Uint8Array | undefined
  const scrypt = (passphrase: string) =>
    new ScryptRecipient(passphrase, logN, (key) => {
      wrapped = key
    })
  const {fileKey, header} =
    opts.type === 'passphrase'
      ? await makeHeader(
          (e) => e.addRecipient(scrypt(opts.passphrase)),
          () => wrapped,
        )
      : await recipientsHeader(opts.recipients)
  const nonce = randomBytes(NONCE)
  return new EncryptStream(Buffer.concat([header, nonce]), payloadKey(fileKey, nonce))
}

/** The header for public keys: X25519 ones on node:crypto (no typage import), the other types by typage. */
async function recipientsHeader(recipients: string[]): Promise<{fileKey: Uint8Array; header: Buffer}> {
  const keys = x25519Keys(recipients)
  return keys ? x25519Header(keys) : makeHeader((e) => addRecipients(e, recipients))
}

/**
 * Imports typage when `impl` or one of the keys needs it (the typage implementation, a
 * post-quantum identity), so that createDecryptStream parses every key at once: call it first.
 * X25519 identities and passphrases need nothing imported.
 */
export async function prepareDecrypt(opts: DecryptOptions, impl: AgeImplementation = DEFAULT_AGE): Promise<void> {
  if (readsWithTypage(opts, impl)) await loadTypage()
}

/** Whether typage opens the header: the typage implementation, or a post-quantum identity, which only typage opens. */
function readsWithTypage(opts: DecryptOptions, impl: AgeImplementation): boolean {
  return impl === 'typage' || opts.identities.some((i) => i.trim().startsWith('AGE-SECRET-KEY-PQ-1'))
}

/** A stream that decrypts an age file written to it, header first. */
export function createDecryptStream(opts: DecryptOptions, impl: AgeImplementation = DEFAULT_AGE): Duplex {
  checkKeysGiven(opts)
  if (!readsWithTypage(opts, impl)) {
    const identities = nativeIdentities(opts)
    return new DecryptStream(async (header) => {
      try {
        return await openHeader(header, identities)
      } catch (error) {
        throw headerError(error)
      }
    })
  }

  const passphrase = (p: string) => (impl === 'typage' ? null : new ScryptIdentity(p))
  // Keys are parsed here, so a bad identity throws at once, when typage is in (prepareDecrypt);
  // else typage is imported and the keys parsed when the header arrives, and a bad one fails the stream.
  const typage = loadedTypage()
  const ready = typage && makeDecrypter(opts, passphrase, typage)
  const decrypter = async () => ready || makeDecrypter(opts, passphrase, await loadTypage())
  if (impl === 'typage') return typageDecrypt(decrypter)
  return new DecryptStream(async (header) => {
    try {
      return await (await decrypter()).decryptHeader(header)
    } catch (error) {
      throw headerError(error)
    }
  })
}

/**
 * The keys as the identities age-open.ts opens headers with (X25519, and scrypt for each
 * passphrase), in typage's order: identities, then passphrases. A bad identity is a usage error
 * in typage's words.
 */
function nativeIdentities(opts: DecryptOptions): StanzaIdentity[] {
  const identities = opts.identities.map((identity) =>
    parseIdentity<StanzaIdentity>(identity, (i) => {
      if (!i.startsWith('AGE-SECRET-KEY-1')) throw new Error('unrecognized identity type')
      return new X25519Identity(i)
    }),
  )
  return [...identities, ...opts.passphrases.map((p) => new ScryptIdentity(p))]
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
    // typage in first if needed, so the keys are parsed (and a bad one refused) before the stream starts.
    await prepareDecrypt(keys, impl)
    return await collect(Readable.from([Buffer.from(bytes)]), createDecryptStream(keys, impl))
  } catch (error) {
    if (!label || !(error instanceof BrError)) throw error
    throw labelled(error, label)
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
