/**
 * age's X25519 recipient and identity (C2SP age, "The X25519 recipient type") and the header
 * around its stanzas (C2SP age, "Header"), on node:crypto: what a backup to `age1…` public keys
 * and a read with an `AGE-SECRET-KEY-1…` identity need, without importing typage
 * (age-encryption), which loads every recipient type it knows (post-quantum ML-KEM, P-256,
 * scrypt, WebAuthn): ~150 ms of CPU at start-up, a tenth of an incremental backup. typage stays
 * the writer for the recipient types handled here as not ours (age1pq1…, age1tag1…, age1tagpq1…:
 * `x25519Recipient` returns undefined for them) and the reader for post-quantum identities.
 *
 * Guarantees: a recipient is parsed as typage parses it (@scure/base's bech32, the library typage
 * uses; prefix `age`, 32 bytes), and refused with typage's words; the stanza and header are the
 * bytes typage writes for the same keys (a stanza body of 32 bytes on one line, the MAC an
 * HMAC-SHA-256 under HKDF(file key, "header") of the header up to `---`), so `age -d` and typage
 * read them (test/unit/lib/archive/age-x25519.test.ts); a recipient whose shared secret would be
 * all zeros (a low-order point) is refused by OpenSSL, as the spec asks. An identity is parsed
 * and refused as typage does, and unwraps as typage's X25519Identity does, through the same
 * WebCrypto calls (node:crypto's `webcrypto`), so an all-zero share fails in the same words. It
 * does not parse headers (age-open.ts), nor write scrypt stanzas (age-scrypt.ts) or any other type.
 */
import {base64nopad, bech32} from '@scure/base'
import {
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
  randomBytes,
  webcrypto,
} from 'node:crypto'

import {openFileKey, sealFileKey} from './age-aead.js'
import {BODY_LINE, headerMac, type NativeStanza, type StanzaIdentity} from './age-open.js'

const X25519_LABEL = 'age-encryption.org/v1/X25519'
const VERSION_LINE = 'age-encryption.org/v1\n'
/** typage's other recipient types, all spelled age1…: not X25519, left to typage. */
const OTHER_TYPES = ['age1pq1', 'age1tag1', 'age1tagpq1']
/** RFC 8410's PKCS #8 wrapping of a raw 32-byte X25519 private key (WebCrypto imports no raw private key). */
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex')

/**
 * The 32-byte public key of an X25519 recipient `age1…`; undefined for a recipient of another type
 * that typage knows (post-quantum, tag); throws as typage does when it is not a valid one.
 */
export function x25519Recipient(recipient: string): Buffer | undefined {
  if (OTHER_TYPES.some((prefix) => recipient.startsWith(prefix))) return undefined
  if (!recipient.startsWith('age1')) throw new Error('unrecognized recipient type')
  const decoded = bech32.decodeToBytes(recipient)
  if (decoded.prefix.toLowerCase() !== 'age' || decoded.bytes.length !== 32) throw new Error('invalid recipient')
  return Buffer.from(decoded.bytes)
}

/** The stanza that wraps `fileKey` for the X25519 public key `recipient` (32 bytes). */
export function wrapForX25519(fileKey: Uint8Array, recipient: Buffer): NativeStanza {
  const ephemeral = generateKeyPairSync('x25519')
  const share = rawPublicKey(ephemeral.publicKey)
  const secret = diffieHellman({privateKey: ephemeral.privateKey, publicKey: publicKeyOf(recipient)})
  const key = Buffer.from(hkdfSync('sha256', secret, Buffer.concat([share, recipient]), X25519_LABEL, 32))
  return {args: ['X25519', base64nopad.encode(share)], body: sealFileKey(key, fileKey)}
}

/**
 * An X25519 identity `AGE-SECRET-KEY-1…`, parsed and refused in typage's words (the constructor
 * throws); it unwraps the file key from the header's X25519 stanzas, in their order.
 */
export class X25519Identity implements StanzaIdentity {
  private readonly privateKey: Promise<webcrypto.CryptoKey>
  private readonly recipient: Buffer

  constructor(identity: string) {
    const decoded = bech32.decodeToBytes(identity)
    if (
      !identity.startsWith('AGE-SECRET-KEY-1') ||
      decoded.prefix.toUpperCase() !== 'AGE-SECRET-KEY-' ||
      decoded.bytes.length !== 32
    ) {
      throw new Error('invalid identity')
    }

    const pkcs8 = Buffer.concat([PKCS8_PREFIX, decoded.bytes])
    this.recipient = rawPublicKey(createPublicKey(createPrivateKey({format: 'der', key: pkcs8, type: 'pkcs8'})))
    this.privateKey = webcrypto.subtle.importKey('pkcs8', pkcs8, {name: 'X25519'}, false, ['deriveBits'])
  }

  async unwrapFileKey(stanzas: NativeStanza[]): Promise<null | Uint8Array> {
    for (const s of stanzas) {
      if (s.args[0] !== 'X25519') continue
      if (s.args.length !== 2) throw new Error('invalid X25519 stanza')
      const share = base64nopad.decode(s.args[1])
      if (share.length !== 32) throw new Error('invalid X25519 stanza')
      // eslint-disable-next-line no-await-in-loop -- stanzas are tried in order, as typage does
      const secret = await this.sharedSecret(share)
      const key = hkdfSync('sha256', secret, Buffer.concat([share, this.recipient]), X25519_LABEL, 32)
      const fileKey = openFileKey(s.body, new Uint8Array(key))
      if (fileKey !== null) return fileKey
    }

    return null
  }

  /** X25519(identity, share); WebCrypto (as typage on Node) refuses an all-zero result. */
  private async sharedSecret(share: Uint8Array): Promise<Buffer> {
    const peer = await webcrypto.subtle.importKey('raw', share, {name: 'X25519'}, false, [])
    return Buffer.from(await webcrypto.subtle.deriveBits({name: 'X25519', public: peer}, await this.privateKey, 256))
  }
}

/**
 * A new 16-byte file key and the age header that wraps it for every recipient (32-byte X25519
 * public keys), MAC line included: what typage's Encrypter writes for them.
 */
export function x25519Header(recipients: Buffer[]): {fileKey: Buffer; header: Buffer} {
  const fileKey = randomBytes(16)
  return {
    fileKey,
    header: encodeHeader(
      recipients.map((r) => wrapForX25519(fileKey, r)),
      fileKey,
    ),
  }
}

/** The header of `stanzas`, authenticated under `fileKey` (age's header MAC). */
export function encodeHeader(stanzas: NativeStanza[], fileKey: Uint8Array): Buffer {
  const lines = [VERSION_LINE]
  for (const stanza of stanzas) {
    lines.push(`-> ${stanza.args.join(' ')}\n`)
    for (let at = 0; at < stanza.body.length; at += BODY_LINE)
      lines.push(`${base64nopad.encode(stanza.body.subarray(at, at + BODY_LINE))}\n`)
    // A body whose last line is full is followed by an empty line: readers stop at a short one.
    if (stanza.body.length % BODY_LINE === 0) lines.push('\n')
  }

  lines.push('---')
  const unsigned = Buffer.from(lines.join(''), 'latin1')
  return Buffer.concat([unsigned, Buffer.from(` ${base64nopad.encode(headerMac(fileKey, unsigned))}\n`, 'latin1')])
}

function publicKeyOf(raw: Buffer): KeyObject {
  return createPublicKey({format: 'jwk', key: {crv: 'X25519', kty: 'OKP', x: raw.toString('base64url')}})
}

function rawPublicKey(key: KeyObject): Buffer {
  return Buffer.from(key.export({format: 'jwk'}).x!, 'base64url')
}
