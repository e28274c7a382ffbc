/**
 * ChaCha20-Poly1305 (RFC 8439) sealing and opening of one message, on node:crypto: what age uses
 * for each payload chunk (age-payload.ts) and to wrap a file key in a stanza body under a zero
 * nonce (sealFileKey, openFileKey: the X25519 and scrypt stanzas). A leaf: it imports nothing of
 * ours, so the header and payload modules can all use it without importing each other.
 *
 * Guarantees: the tag is 16 bytes after the ciphertext; `open` returns null, never partial
 * plaintext, when the message does not authenticate under the key and nonce; a wrapped file key
 * is 32 bytes (16 sealed, 16 of tag), and a body of another length is refused.
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

/** A stanza body: the 16-byte file key sealed under `key` and a zero nonce (age's X25519 and scrypt stanzas). */
export function sealFileKey(key: Uint8Array, fileKey: Uint8Array): Buffer {
  return Buffer.concat(seal(Buffer.from(key), Buffer.alloc(12), fileKey))
}

/** The file key a stanza body holds (sealFileKey undone), or null when it does not open under `key`. */
export function openFileKey(body: Uint8Array, key: Uint8Array): Buffer | null {
  if (body.length !== 32) throw new Error('invalid stanza')
  return open(Buffer.from(key), Buffer.alloc(12), Buffer.from(body))
}
