/**
 * Ed25519 signing keys of backup writers (node:crypto), as text a key file can hold:
 *
 *   signing secret  BRSIG-SECRET-KEY-1<64 hex digits>   (the 32-byte seed; writer key file only)
 *   signer          brsig1<64 hex digits>               (the 32-byte public key; public)
 *
 * Guarantees: parse functions accept exactly these shapes and name the offending source (never
 * its value: a secret passed in the wrong place must not end up in a log); `verify` never
 * throws for a malformed signature, it answers false. Not: key storage (keys.ts) or what a
 * signature means for a backup (repo/authenticity.ts).
 */
import {createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify} from 'node:crypto'

import {usageError} from './errors.js'

export const SIGNER_PREFIX = 'brsig1'
export const SIGNING_SECRET_PREFIX = 'BRSIG-SECRET-KEY-1'
export const SIGNER_RE = /^brsig1[0-9a-f]{64}$/
export const SIGNING_SECRET_RE = /^BRSIG-SECRET-KEY-1[0-9A-F]{64}$/

// DER wrappers of a raw Ed25519 key (RFC 8410): PKCS#8 for the 32-byte seed, SPKI for the public key.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

export interface SigningKey {
  private: KeyObject
  /** the public half, as `brsig1…` */
  signer: string
}

export function generateSigningKey(): {secret: string; signer: string} {
  const {privateKey, publicKey} = generateKeyPairSync('ed25519')
  const seed = privateKey.export({format: 'der', type: 'pkcs8'}).subarray(PKCS8_PREFIX.length)
  return {secret: SIGNING_SECRET_PREFIX + seed.toString('hex').toUpperCase(), signer: signerOf(publicKey)}
}

/** A `BRSIG-SECRET-KEY-1…` line; `source` names where it came from in the error. */
export function parseSigningSecret(text: string, source: string): SigningKey {
  const line = text.trim()
  if (!SIGNING_SECRET_RE.test(line)) {
    throw usageError(
      `${source} does not hold a moctl br signing key`,
      'use the writer key file that `moctl br key generate --writer-key FILE` wrote',
    )
  }

  const seed = Buffer.from(line.slice(SIGNING_SECRET_PREFIX.length), 'hex')
  const key = createPrivateKey({format: 'der', key: Buffer.concat([PKCS8_PREFIX, seed]), type: 'pkcs8'})
  return {private: key, signer: signerOf(createPublicKey(key))}
}

export function isSigner(text: string): boolean {
  return SIGNER_RE.test(text)
}

/** Checks a `brsig1…` public key given by a flag, a file or the environment. */
export function parseSigner(text: string, source: string): string {
  const value = text.trim()
  if (!SIGNER_RE.test(value)) {
    throw usageError(
      `${source} is not a moctl br signer (brsig1 followed by 64 hex digits)`,
      'pass the brsig1… line of the reader key file, or the "# signer:" line of the writer key file',
    )
  }

  return value
}

export function signBytes(key: SigningKey, message: Uint8Array): string {
  return sign(null, message, key.private).toString('base64')
}

/** true only when `signature` (base64) is a valid Ed25519 signature of `message` by `signer`. */
export function verifyBytes(signer: string, message: Uint8Array, signature: string): boolean {
  if (!SIGNER_RE.test(signer) || !/^[A-Za-z0-9+/]{86}==$/.test(signature)) return false
  const key = createPublicKey({
    format: 'der',
    key: Buffer.concat([SPKI_PREFIX, Buffer.from(signer.slice(SIGNER_PREFIX.length), 'hex')]),
    type: 'spki',
  })
  try {
    return verify(null, message, key, Buffer.from(signature, 'base64'))
  } catch {
    return false
  }
}

function signerOf(publicKey: KeyObject): string {
  const raw = publicKey.export({format: 'der', type: 'spki'}).subarray(SPKI_PREFIX.length)
  return SIGNER_PREFIX + raw.toString('hex')
}
