/**
 * age's scrypt recipient and identity (C2SP age, "The scrypt recipient type") on node:crypto's
 * scrypt: native and off the event loop, and the only way to see the file key in passphrase
 * mode, where typage takes no other recipient.
 *
 * Guarantees: the work factor written is the one the caller passes (DEFAULT_SCRYPT_LOG_N, 2^18,
 * unless it passes another; nothing in the environment changes it), and is refused above 2^20 on
 * both sides, as typage does, so we never write what typage cannot read and never spend minutes
 * on a forged header. A scrypt stanza that is not alone in its header, or malformed, is refused
 * in typage's words.
 * It does not hold passphrases longer than the stream that needs them.
 */
import type {Identity, Recipient, Stanza} from 'age-encryption'

import {base64nopad} from '@scure/base'
import {randomBytes, scrypt as scryptCallback, type ScryptOptions} from 'node:crypto'

import type {StanzaIdentity} from './age-open.js'

import {usageError} from '../errors.js'
import {openFileKey, sealFileKey} from './age-aead.js'
import {loadTypage} from './age-header.js'

/** typage's default scrypt work factor (2^18), also age's. */
export const DEFAULT_SCRYPT_LOG_N = 18
/** typage refuses to decrypt above 2^20: never write what it cannot read. */
export const MAX_SCRYPT_LOG_N = 20
const SCRYPT_LABEL = 'age-encryption.org/v1/scrypt'

/** The work factor to write: `logN` when given and in range (1-20), else the default. */
export function scryptWorkFactor(logN: number | undefined): number {
  if (logN === undefined) return DEFAULT_SCRYPT_LOG_N
  if (!Number.isInteger(logN) || logN < 1 || logN > MAX_SCRYPT_LOG_N) {
    throw usageError(
      `scrypt work factor 2^${logN} is out of range`,
      `use 1-${MAX_SCRYPT_LOG_N}, or leave it out for ${DEFAULT_SCRYPT_LOG_N}`,
    )
  }

  return logN
}

/**
 * age's scrypt recipient (spec: "The scrypt recipient type") on node:crypto. It reports the file
 * key it wraps: that is how the native payload gets it in passphrase mode.
 */
export class ScryptRecipient implements Recipient {
  constructor(
    private readonly passphrase: string,
    private readonly logN: number,
    private readonly capture: (fileKey: Uint8Array) => void,
  ) {}

  async wrapFileKey(fileKey: Uint8Array): Promise<Stanza[]> {
    this.capture(Uint8Array.from(fileKey))
    const salt = randomBytes(16)
    const key = await scryptKey(this.passphrase, salt, this.logN)
    return [
      new (await loadTypage()).Stanza(
        ['scrypt', base64nopad.encode(salt), String(this.logN)],
        sealFileKey(key, fileKey),
      ),
    ]
  }
}

/**
 * age's scrypt identity on node:crypto's scrypt (native, off the event loop), with typage's checks
 * in typage's order and words (the salt decoded by @scure/base, as typage), so a bad stanza fails
 * as it fails there.
 */
export class ScryptIdentity implements Identity, StanzaIdentity {
  constructor(private readonly passphrase: string) {}

  async unwrapFileKey(stanzas: Array<{args: string[]; body: Uint8Array}>): Promise<null | Uint8Array> {
    for (const s of stanzas) {
      if (s.args[0] !== 'scrypt') continue
      // The spec: a scrypt stanza must stand alone, or a passphrase file could be re-targeted.
      if (stanzas.length !== 1) throw new Error('scrypt recipient is not the only one in the header')
      if (s.args.length !== 3 || !/^[1-9]\d*$/.test(s.args[2])) throw new Error('invalid scrypt stanza')
      const salt = base64nopad.decode(s.args[1])
      if (salt.length !== 16) throw new Error('invalid scrypt stanza')
      const logN = Number(s.args[2])
      if (logN > MAX_SCRYPT_LOG_N) throw new Error('scrypt work factor is too high')
      // typage checks the body after deriving; nothing between can fail, so checking first says the same, sooner.
      if (s.body.length !== 32) throw new Error('invalid stanza')
      // eslint-disable-next-line no-await-in-loop -- a scrypt header has exactly one stanza
      const key = await scryptKey(this.passphrase, Buffer.from(salt), logN)
      const fileKey = openFileKey(s.body, key)
      if (fileKey !== null) return fileKey
    }

    return null
  }
}

async function scryptKey(passphrase: string, salt: Buffer, logN: number): Promise<Buffer> {
  const N = 2 ** logN
  // node:crypto refuses more than 32 MiB by default; 2^18 needs 256 MiB (128·N·r).
  const options: ScryptOptions = {maxmem: 2 * 128 * N * 8, N, p: 1, r: 8}
  return new Promise((resolve, reject) => {
    scryptCallback(passphrase, Buffer.concat([Buffer.from(SCRYPT_LABEL), salt]), 32, options, (error, key) => {
      if (error) reject(error)
      else resolve(key)
    })
  })
}
