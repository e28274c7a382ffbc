import {spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {existsSync} from 'node:fs'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {AgeImplementation} from '../../../../src/lib/archive/types.js'

import {EncryptStream} from '../../../../src/lib/archive/age-payload.js'
import {
  createDecryptStream,
  createEncryptStream,
  DEFAULT_AGE,
  generateIdentity,
  identityToRecipient,
  NO_IDENTITY,
  TAMPERED,
  TRUNCATED,
} from '../../../../src/lib/archive/age.js'
import {BrError} from '../../../../src/lib/errors.js'
import {tempDir, through} from './fixture.js'

const IMPLS: AgeImplementation[] = ['native', 'typage']
const AGE = '/usr/bin/age'
// The spec's edge sizes: empty, one byte, exactly one chunk, one chunk and a byte, exactly two chunks, many.
const SIZES = [0, 1, 65_536, 65_537, 131_072, 1_000_003]
/** scrypt at 2^10 keeps passphrase tests fast; production writes age's 2^18. */
const FAST_SCRYPT = 10

let key: {identity: string; recipient: string}
let other: {identity: string; recipient: string}
let work: Awaited<ReturnType<typeof tempDir>>

beforeAll(async () => {
  key = await generateIdentity()
  other = await generateIdentity()
  work = await tempDir()
})

afterAll(async () => {
  await work.cleanup()
})

const toRecipients = () => ({recipients: [key.recipient], type: 'recipients' as const})
const withIdentity = (identity = key.identity) => ({identities: [identity], passphrases: []})

async function rejection(promise: Promise<unknown>): Promise<BrError> {
  const error = await promise.then(
    () => {
      throw new Error('expected a failure')
    },
    (error_: unknown) => error_,
  )
  expect(error).toBeInstanceOf(BrError)
  return error as BrError
}

describe('age', () => {
  it('reads a post-quantum (hybrid) backup through typage on the native path too, with an X25519 identity beside it', async () => {
    const {generateHybridIdentity, identityToRecipient: typageRecipient} = await import('age-encryption')
    const hybrid = await generateHybridIdentity()
    const plain = randomBytes(70_000)
    const sealed = await through(
      plain,
      await createEncryptStream({recipients: [await typageRecipient(hybrid)], type: 'recipients'}),
    )
    for (const impl of IMPLS) {
      const opened = await through(
        sealed,
        createDecryptStream({identities: [key.identity, hybrid], passphrases: []}, impl),
      )
      expect(opened.equals(plain)).toBe(true)
      // Without the hybrid identity nothing opens it, in the words of either path.
      const refused = await rejection(through(sealed, createDecryptStream(withIdentity(), impl)))
      expect(refused.message).toContain(NO_IDENTITY)
    }
  })

  it('is native by default, and keys round-trip through identityToRecipient', async () => {
    expect(DEFAULT_AGE).toBe('native')
    expect(key.identity).toMatch(/^AGE-SECRET-KEY-1[\dA-Z]+$/)
    expect(key.recipient).toMatch(/^age1[\da-z]+$/)
    expect(await identityToRecipient(key.identity)).toBe(key.recipient)
    await expect(identityToRecipient('AGE-SECRET-KEY-1NOPE')).rejects.toThrow(/not an age identity/)
  })

  for (const writer of IMPLS) {
    for (const reader of IMPLS) {
      it(`${reader} decrypts what ${writer} encrypts to a recipient, at every chunk edge`, async () => {
        for (const size of SIZES) {
          const plain = randomBytes(size)
          const sealed = await through(plain, await createEncryptStream(toRecipients(), writer))
          // header + 16-byte nonce + a 16-byte tag per started 64 KiB chunk (one for empty)
          expect(sealed.length).toBeGreaterThan(plain.length + 16 + 16 * Math.max(1, Math.ceil(size / 65_536)))
          expect(sealed.subarray(0, 22).toString()).toBe('age-encryption.org/v1\n')
          const back = await through(sealed, createDecryptStream(withIdentity(), reader))
          expect(back.equals(plain), `size ${size}`).toBe(true)
        }
      })

      it(`${reader} decrypts what ${writer} encrypts with a passphrase`, async () => {
        const plain = randomBytes(200_000)
        const sealed = await through(
          plain,
          await createEncryptStream({passphrase: 'correct horse', scryptLogN: FAST_SCRYPT, type: 'passphrase'}, writer),
        )
        expect(sealed.toString('latin1')).toMatch(/\n-> scrypt \S{22} 10\n/)
        const back = await through(
          sealed,
          createDecryptStream({identities: [], passphrases: ['wrong', 'correct horse']}, reader),
        )
        expect(back.equals(plain)).toBe(true)
      })
    }
  }

  for (const impl of IMPLS) {
    it(`${impl}: a wrong identity or passphrase says no identity matches`, async () => {
      const sealed = await through(randomBytes(1000), await createEncryptStream(toRecipients(), impl))
      const wrongKey = await rejection(through(sealed, createDecryptStream(withIdentity(other.identity), impl)))
      expect(wrongKey.code).toBe('integrity')
      expect(wrongKey.exitCode).toBe(3)
      expect(wrongKey.message).toBe(NO_IDENTITY)

      const locked = await through(
        randomBytes(1000),
        await createEncryptStream({passphrase: 'right', scryptLogN: FAST_SCRYPT, type: 'passphrase'}, impl),
      )
      const wrongPass = await rejection(
        through(locked, createDecryptStream({identities: [key.identity], passphrases: ['wrong']}, impl)),
      )
      expect(wrongPass.message).toBe(NO_IDENTITY)
    })

    it(`${impl}: a truncated archive fails as an integrity error`, async () => {
      const plain = randomBytes(3 * 65_536 + 500)
      const sealed = await through(plain, await createEncryptStream(toRecipients(), impl))
      for (const cut of [1, 100, 516, sealed.length - 40]) {
        const error = await rejection(
          through(sealed.subarray(0, sealed.length - cut), createDecryptStream(withIdentity(), impl)),
        )
        expect(error.code, `cut ${cut}`).toBe('integrity')
        expect(error.message, `cut ${cut}`).toMatch(new RegExp(`${TRUNCATED}|${TAMPERED}|invalid age header`))
      }
    })

    it(`${impl}: one flipped byte anywhere fails as tampered`, async () => {
      const plain = randomBytes(4 * 65_536)
      const sealed = await through(plain, await createEncryptStream(toRecipients(), impl))
      for (const at of [30, 150, Math.floor(sealed.length / 2), sealed.length - 1]) {
        const bad = Buffer.from(sealed)
        bad[at] ^= 0x01
        const error = await rejection(through(bad, createDecryptStream(withIdentity(), impl)))
        expect(error.code, `flip at ${at}`).toBe('integrity')
      }
    })
  }

  it('native: no plaintext comes out of a chunk that does not authenticate', async () => {
    const plain = randomBytes(5 * 65_536)
    const sealed = await through(plain, await createEncryptStream(toRecipients(), 'native'))
    const bad = Buffer.from(sealed)
    bad[sealed.length - 3 * 65_552] ^= 0x80
    const out: Buffer[] = []
    const stream = createDecryptStream(withIdentity(), 'native')
    stream.on('data', (c: Buffer) => out.push(c))
    stream.end(bad)
    const error = await new Promise<Error>((resolve) => {
      stream.on('error', resolve)
    })
    expect(error.message).toMatch(/chunk \d+ .*does not authenticate/)
    const released = Buffer.concat(out)
    expect(released.length % 65_536).toBe(0)
    expect(released.equals(plain.subarray(0, released.length))).toBe(true)
    expect(released.length).toBeLessThan(plain.length - 65_536)
  })

  it('native: says after each write how far into its input it is done, and reuse of those bytes changes nothing', async () => {
    const plain = randomBytes(6 * 65_536 + 777)
    const stream = await createEncryptStream(toRecipients(), 'native')
    expect(stream).toBeInstanceOf(EncryptStream)
    // Writes across the 64 KiB chunks, each spoiled once the stream says it is done with it, as
    // the compressor fills its frame buffers again.
    // 200,000 bytes: whole chunks sealed straight from the write, no copy (the path of MiB frames).
    const sizes = [1000, 70_000, 5, 65_536, 200_000, plain.length - 336_541]
    const writes: Array<{chunk: Buffer; end: number}> = []
    const positions: number[] = []
    ;(stream as EncryptStream).doneWith = (position) => {
      positions.push(position)
      for (const w of writes) if (w.end <= position) w.chunk.fill(0xee)
    }

    const out: Buffer[] = []
    stream.on('data', (c: Buffer) => out.push(c))
    const ended = new Promise((resolve) => {
      stream.on('end', resolve)
    })
    let at = 0
    for (const size of sizes) {
      const chunk = Buffer.from(plain.subarray(at, at + size))
      at += size
      writes.push({chunk, end: at})
      stream.write(chunk)
    }

    stream.end()
    await ended
    expect(positions).toEqual(sizes.map((_, i) => sizes.slice(0, i + 1).reduce((a, b) => a + b)))
    expect((await through(Buffer.concat(out), createDecryptStream(withIdentity(), 'native'))).equals(plain)).toBe(true)
  })

  it('names a cut made exactly at a chunk boundary as truncated', async () => {
    const sealed = await through(randomBytes(3 * 65_536 + 10), await createEncryptStream(toRecipients(), 'native'))
    const error = await rejection(through(sealed.subarray(0, -26), createDecryptStream(withIdentity(), 'native')))
    expect(error.message).toBe(TRUNCATED)
  })

  it('says when the input is not age at all', async () => {
    const error = await rejection(
      through(Buffer.from('(zstd frame here)'), createDecryptStream(withIdentity(), 'native')),
    )
    expect(error.message).toMatch(/not age-encrypted/)
  })

  it('refuses to run without keys, or with malformed ones', async () => {
    expect(() => createDecryptStream({identities: [], passphrases: []})).toThrow(/no identity or passphrase given/)
    expect(() => createDecryptStream({identities: ['AGE-SECRET-KEY-1BOGUS'], passphrases: []})).toThrow(
      /not an age identity/,
    )
    await expect(createEncryptStream({recipients: ['age1bogus'], type: 'recipients'})).rejects.toThrow(
      /not an age public key/,
    )
    await expect(createEncryptStream({recipients: [], type: 'recipients'})).rejects.toThrow(/no recipient/)
  })

  it('encrypts to several recipients: each one alone decrypts', async () => {
    const plain = randomBytes(70_000)
    const sealed = await through(
      plain,
      await createEncryptStream({recipients: [key.recipient, other.recipient], type: 'recipients'}),
    )
    for (const id of [key.identity, other.identity]) {
      expect((await through(sealed, createDecryptStream(withIdentity(id)))).equals(plain)).toBe(true)
    }
  })

  describe.skipIf(!existsSync(AGE))('interop with the age CLI', () => {
    it('age -d reads what both implementations write', async () => {
      const identityFile = join(work.dir, 'key.txt')
      await writeFile(identityFile, `${key.identity}\n`)
      for (const impl of IMPLS) {
        for (const size of [0, 65_536, 200_000]) {
          const plain = randomBytes(size)
          const sealed = await through(plain, await createEncryptStream(toRecipients(), impl))
          const cli = spawnSync(AGE, ['-d', '-i', identityFile], {input: sealed, maxBuffer: 16 * 1024 * 1024})
          expect(cli.stderr.toString()).toBe('')
          expect(cli.status).toBe(0)
          expect(cli.stdout.equals(plain), `${impl} size ${size}`).toBe(true)
        }
      }
    })

    it('both implementations read what age -r writes', async () => {
      for (const size of [1, 65_536, 65_537, 300_000]) {
        const plain = randomBytes(size)
        const cli = spawnSync(AGE, ['-r', key.recipient], {input: plain, maxBuffer: 16 * 1024 * 1024})
        expect(cli.status).toBe(0)
        for (const impl of IMPLS) {
          expect(
            (await through(cli.stdout, createDecryptStream(withIdentity(), impl))).equals(plain),
            `${impl} size ${size}`,
          ).toBe(true)
        }
      }
    })
  })
})
