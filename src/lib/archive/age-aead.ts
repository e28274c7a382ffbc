/**
 * ChaCha20-Poly1305 (RFC 8439) sealing and opening of one message, on node:crypto: what age uses
 * for each payload chunk (age-payload.ts) and to wrap a file key in a stanza body (age-x25519.ts,
 * age-scrypt.ts, age-open.ts). A leaf: it imports nothing of ours, so the header and payload
 * modules can all use it without importing each other.
 *
 * Guarantees: the tag is 16 bytes after the ciphertext; `open` returns null, never partial
 * plaintext, when the message does not authenticate under the key and nonce.
 */
import {createCipheriv, createDecipheriv} from 'node:crypto'

/** The Poly1305 tag's length. */
export const TAG = 16

/** `plaintext` sealed: the ciphertext and its tag, to be written one after the other. */
export function seal(key: Buffer, nonce: Buffer, plaintext: Uint8Array): Buffer[] {
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, {authTagLength: TAG})
  const sealed = cipher.update(plaintext)
  cipher.final()
  return [sealed, cipher.getAuthTag()]
}

/** The plaintext, or null when the chunk does not authenticate under this key and nonce. */
export function open(key: Buffer, nonce: Buffer, sealed: Buffer): Buffer | null {
  const decipher = createDecipheriv('chacha20-poly1305', key, nonce, {authTagLength: TAG})
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG))
  const plaintext = decipher.update(sealed.subarray(0, sealed.length - TAG))
  try {
    decipher.final()
  } catch {
    return null
  }

  return plaintext
}
