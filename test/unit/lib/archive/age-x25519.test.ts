/**
 * age-x25519.ts writes what typage writes: the same header bytes for the same stanzas and file
 * key (typage's Encrypter around a recipient that returns fixed stanzas is the reference), X25519
 * stanzas that typage opens, recipients parsed and refused as typage parses and refuses them.
 */
import {bech32} from '@scure/base'
import {Decrypter, Encrypter, generateX25519Identity, identityToRecipient, Stanza} from 'age-encryption'
import {randomBytes} from 'node:crypto'
import {describe, expect, it} from 'vitest'

import {x25519Keys} from '../../../../src/lib/archive/age-header.js'
import {encodeHeader, x25519Header, x25519Recipient} from '../../../../src/lib/archive/age-x25519.js'
import {BrError} from '../../../../src/lib/errors.js'

/** The header typage writes for `stanzas` (returned by a recipient it calls), and the file key it drew. */
async function typageHeader(stanzas: Stanza[]): Promise<{fileKey: Uint8Array; header: Buffer}> {
  let fileKey: Uint8Array | undefined
  const encrypter = new Encrypter()
  encrypter.addRecipient({
    wrapFileKey(key: Uint8Array) {
      fileKey = Uint8Array.from(key)
      return stanzas
    },
  })
  const empty = Buffer.from(await encrypter.encrypt(new Uint8Array(0)))
  // header ‖ 16-byte nonce ‖ 16-byte tag of the empty payload
  return {fileKey: fileKey!, header: empty.subarray(0, -32)}
}

describe('age-x25519', () => {
  it('encodes a header byte for byte as typage does, bodies of every line shape included', async () => {
    // 0 and 48 bytes end on a full line (an empty line follows), 32 is one short line, 100 three lines
    for (const sizes of [[32], [0], [48], [100, 32], [96]]) {
      const stanzas = sizes.map((n, i) => new Stanza(['test', `arg${i}`], randomBytes(n)))
      const reference = await typageHeader(stanzas)
      const ours = encodeHeader(
        stanzas.map((s) => ({args: s.args, body: Buffer.from(s.body)})),
        reference.fileKey,
      )
      expect(ours.toString('latin1'), `bodies ${sizes.join(', ')}`).toBe(reference.header.toString('latin1'))
    }
  })

  it('wraps the file key so that typage opens the header with each identity, and only with those', async () => {
    const identities = await Promise.all([1, 2, 3].map(async () => generateX25519Identity()))
    const recipients = await Promise.all(identities.map(async (i) => identityToRecipient(i)))
    const {fileKey, header} = x25519Header(recipients.map((r) => x25519Recipient(r)!))
    expect(fileKey).toHaveLength(16)
    expect(header.toString('latin1')).toMatch(
      /^age-encryption\.org\/v1\n(?:-> X25519 [\w+/]{43}\n[\w+/]{43}\n){3}--- [\w+/]{43}\n$/,
    )
    for (const identity of identities) {
      const decrypter = new Decrypter()
      decrypter.addIdentity(identity)
      expect(Buffer.from(await decrypter.decryptHeader(header))).toEqual(fileKey)
    }

    const stranger = new Decrypter()
    stranger.addIdentity(await generateX25519Identity())
    await expect(stranger.decryptHeader(header)).rejects.toThrow(/no identity matched/i)
  })

  it('parses a recipient to typage’s key bytes and refuses what typage refuses, in its words', async () => {
    const recipient = await identityToRecipient(await generateX25519Identity())
    expect(x25519Recipient(recipient)).toEqual(Buffer.from(bech32.decodeToBytes(recipient).bytes))
    const broken = recipient.slice(0, -1) + (recipient.endsWith('q') ? 'p' : 'q')
    const short = bech32.encode('age', bech32.toWords(randomBytes(31)))
    for (const bad of [broken, short, 'age1', 'ssh-ed25519 AAAA']) {
      const typage = (() => {
        try {
          new Encrypter().addRecipient(bad)
        } catch (error) {
          return (error as Error).message
        }

        return 'accepted'
      })()
      expect(() => x25519Recipient(bad), bad).toThrow(typage)
    }
  })

  it('leaves typage’s other recipient types to typage, and names a bad recipient as the CLI does', async () => {
    const recipient = await identityToRecipient(await generateX25519Identity())
    expect(x25519Recipient('age1pq1abc')).toBeUndefined()
    expect(x25519Recipient('age1tag1abc')).toBeUndefined()
    expect(x25519Keys([recipient, 'age1pq1abc'])).toBeUndefined()
    expect(x25519Keys([` ${recipient}\n`])).toHaveLength(1)
    let error: unknown
    try {
      x25519Keys([recipient, 'age1notakey'])
    } catch (error_) {
      error = error_
    }

    expect(error).toBeInstanceOf(BrError)
    expect((error as BrError).message).toMatch(/^recipient age1notakey is not an age public key: /)
    expect(() => x25519Keys([])).toThrow('no recipient to encrypt to')
  })

  it('refuses a low-order recipient key (an all-zero shared secret), as the spec asks', () => {
    const zero = bech32.encode('age', bech32.toWords(new Uint8Array(32)))
    expect(() => x25519Header([x25519Recipient(zero)!])).toThrow()
  })
})
