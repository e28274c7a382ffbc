/**
 * age's X25519 recipient (C2SP age, "The X25519 recipient type") and the header around its
 * stanzas (C2SP age, "Header"), on node:crypto: what a backup to `age1…` public keys needs, without
 * importing typage (age-encryption), which loads every recipient type it knows (post-quantum
 * ML-KEM, P-256, scrypt, WebAuthn): ~150 ms of CPU at start-up, a tenth of an incremental backup.
 * typage stays the reader of every header and the writer for the recipient types handled here
 * as not ours (age1pq1…, age1tag1…, age1tagpq1…: `x25519Recipient` returns undefined for them).
 *
 * Guarantees: a recipient is parsed as typage parses it (@scure/base's bech32, the library typage
 * uses; prefix `age`, 32 bytes), and refused with typage's words; the stanza and header are the
 * bytes typage writes for the same keys (a stanza body of 32 bytes on one line, the MAC an
 * HMAC-SHA-256 under HKDF(file key, "header") of the header up to `---`), so `age -d` and typage
 * read them (test/unit/lib/archive/age-x25519.test.ts); a recipient whose shared secret would be
 * all zeros (a low-order point) is refused by OpenSSL, as the spec asks. It does not read headers,
 * nor write scrypt stanzas (age-scrypt.ts) or any other type.
 */
import {bech32} from '@scure/base'
import {
  createCipheriv,
  createHmac,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
  randomBytes,
} from 'node:crypto'

const X25519_LABEL = 'age-encryption.org/v1/X25519'
const VERSION_LINE = 'age-encryption.org/v1\n'
/** typage's other recipient types, all spelled age1…: not X25519, left to typage. */
const OTHER_TYPES = ['age1pq1', 'age1tag1', 'age1tagpq1']

/** A stanza as the header encodes it: `-> args…`, then the body in base64 lines of 48 bytes. */
export interface NativeStanza {
  args: string[]
  body: Buffer
}

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
  const cipher = createCipheriv('chacha20-poly1305', key, Buffer.alloc(12), {authTagLength: 16})
  const body = Buffer.concat([cipher.update(fileKey), cipher.final(), cipher.getAuthTag()])
  return {args: ['X25519', base64NoPad(share)], body}
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
    for (let at = 0; at < stanza.body.length; at += 48)
      lines.push(`${base64NoPad(stanza.body.subarray(at, at + 48))}\n`)
    // A body whose last line is full is followed by an empty line: readers stop at a short one.
    if (stanza.body.length % 48 === 0) lines.push('\n')
  }

  lines.push('---')
  const unsigned = Buffer.from(lines.join(''), 'latin1')
  const macKey = Buffer.from(hkdfSync('sha256', fileKey, Buffer.alloc(0), 'header', 32))
  const mac = createHmac('sha256', macKey).update(unsigned).digest()
  return Buffer.concat([unsigned, Buffer.from(` ${base64NoPad(mac)}\n`, 'latin1')])
}

function base64NoPad(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64').replace(/=+$/, '')
}

function publicKeyOf(raw: Buffer): KeyObject {
  return createPublicKey({format: 'jwk', key: {crv: 'X25519', kty: 'OKP', x: raw.toString('base64url')}})
}

function rawPublicKey(key: KeyObject): Buffer {
  return Buffer.from(key.export({format: 'jwk'}).x!, 'base64url')
}
