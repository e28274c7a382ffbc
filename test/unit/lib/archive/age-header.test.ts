/**
 * The two behaviours of typage (age-encryption, pinned to an exact version in package.json) that
 * age-header.ts builds on. If an upgrade changes either, these fail before any archive does:
 *   1. a custom Recipient added beside real ones is handed the 16-byte file key, may wrap nothing
 *      (no stanza), and the header stays valid for the real recipients;
 *   2. encrypting an empty payload yields header ‖ 16-byte nonce ‖ 16-byte tag, and the header
 *      has age v1's shape: the version line, one stanza per recipient, the MAC line.
 */
import {Decrypter, Encrypter, generateX25519Identity, identityToRecipient} from 'age-encryption'
import {readFileSync} from 'node:fs'
import {describe, expect, it} from 'vitest'

import {addRecipients, makeHeader} from '../../../../src/lib/archive/age-header.js'

/** base64 without padding of 32 bytes (an X25519 share, a wrapped key, a MAC). */
const B64_32 = String.raw`[A-Za-z0-9+/]{43}`
const X25519_STANZA = String.raw`-> X25519 ${B64_32}\n${B64_32}\n`
const HEADER = new RegExp(String.raw`^age-encryption\.org/v1\n(?:${X25519_STANZA})+--- ${B64_32}\n$`)

describe('typage, as age-header.ts relies on it', () => {
  it('is the exact version package.json pins', () => {
    const pinned = JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as {
      dependencies: Record<string, string>
    }
    const installed = JSON.parse(
      readFileSync(new URL('../../../../node_modules/age-encryption/package.json', import.meta.url), 'utf8'),
    ) as {version: string}
    expect(pinned.dependencies['age-encryption']).toMatch(/^\d+\.\d+\.\d+$/)
    expect(installed.version).toBe(pinned.dependencies['age-encryption'])
  })

  it('hands a custom Recipient the file key; it may wrap nothing and the header still opens', async () => {
    const identity = await generateX25519Identity()
    const seen: Uint8Array[] = []
    const encrypter = new Encrypter()
    encrypter.addRecipient(await identityToRecipient(identity))
    encrypter.addRecipient({
      wrapFileKey(fileKey: Uint8Array) {
        seen.push(Uint8Array.from(fileKey))
        return []
      },
    })
    const sealed = await encrypter.encrypt(new TextEncoder().encode('payload'))
    expect(seen).toHaveLength(1)
    expect(seen[0]).toHaveLength(16)

    const decrypter = new Decrypter()
    decrypter.addIdentity(identity)
    const text = Buffer.from(sealed).toString('latin1')
    const header = Buffer.from(sealed.subarray(0, text.indexOf('\n', text.indexOf('\n---') + 1) + 1))
    expect(Buffer.from(await decrypter.decryptHeader(header))).toEqual(Buffer.from(seen[0]))
    expect(new TextDecoder().decode(await decrypter.decrypt(sealed))).toBe('payload')
  })

  it('writes an empty payload as header ‖ nonce ‖ tag, the header in age v1 shape', async () => {
    for (const count of [1, 3]) {
      const recipients = await Promise.all(
        Array.from({length: count}, async () => identityToRecipient(await generateX25519Identity())),
      )
      const encrypter = new Encrypter()
      for (const r of recipients) encrypter.addRecipient(r)

      const empty = Buffer.from(await encrypter.encrypt(new Uint8Array(0)))
      const text = empty.toString('latin1')
      const headerLength = text.indexOf('\n', text.indexOf('\n---') + 1) + 1
      // version line 22, a stanza 54 + 44, the MAC line 48
      expect(headerLength).toBe(22 + count * 98 + 48)
      expect(empty.length).toBe(headerLength + 16 + 16)
      expect(text.slice(0, headerLength)).toMatch(HEADER)
    }
  })
})

describe('makeHeader', () => {
  it('returns typage’s header and the file key it wraps, which opens that header', async () => {
    const identity = await generateX25519Identity()
    const recipient = await identityToRecipient(identity)
    const {fileKey, header} = await makeHeader((e) => addRecipients(e, [recipient]))
    expect(fileKey).toHaveLength(16)
    expect(header.toString('latin1')).toMatch(HEADER)
    const decrypter = new Decrypter()
    decrypter.addIdentity(identity)
    expect(Buffer.from(await decrypter.decryptHeader(header))).toEqual(Buffer.from(fileKey))
  })
})
