/**
 * age-open.ts reads headers as typage does: every class of damaged header is refused by both
 * implementations with the same BrError (message, hint, exit code), each case checked to fail
 * for the reason it names; an edit at every byte of a header gives the same outcome through both
 * parsers; and what the native path accepts (unknown stanza types, bodies of every line shape,
 * its stanza anywhere among others) typage and `age -d` read too.
 */
import {base64nopad} from '@scure/base'
import {Decrypter} from 'age-encryption'
import {spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {existsSync} from 'node:fs'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {AgeImplementation, DecryptOptions} from '../../../../src/lib/archive/types.js'

import {headerEnd, headerError, MAX_HEADER} from '../../../../src/lib/archive/age-header.js'
import {type NativeStanza, openHeader} from '../../../../src/lib/archive/age-open.js'
import {EncryptStream, payloadKey} from '../../../../src/lib/archive/age-payload.js'
import {encodeHeader, wrapForX25519, X25519Identity, x25519Recipient} from '../../../../src/lib/archive/age-x25519.js'
import {createDecryptStream, createEncryptStream, generateIdentity} from '../../../../src/lib/archive/age.js'
import {BrError} from '../../../../src/lib/errors.js'
import {tempDir, through} from './fixture.js'

const IMPLS: AgeImplementation[] = ['native', 'typage']
const AGE = '/usr/bin/age'
const PLAIN = Buffer.from('the payload, one short chunk')
/** scrypt at 2^4 keeps these fast: the work factor is age-scrypt.test.ts's subject. */
const FAST_SCRYPT = 4

let key: {identity: string; recipient: string}
let other: {identity: string; recipient: string}
let toKey: Buffer
let toPassphrase: Buffer
let work: Awaited<ReturnType<typeof tempDir>>

beforeAll(async () => {
  key = await generateIdentity()
  other = await generateIdentity()
  work = await tempDir()
  toKey = await through(
    PLAIN,
    await createEncryptStream({recipients: [other.recipient, key.recipient], type: 'recipients'}),
  )
  toPassphrase = await through(
    PLAIN,
    await createEncryptStream({passphrase: 'pw', scryptLogN: FAST_SCRYPT, type: 'passphrase'}),
  )
})

afterAll(async () => work?.cleanup())

const keys = (): DecryptOptions => ({identities: [key.identity], passphrases: []})
const passphrase = (): DecryptOptions => ({identities: [], passphrases: ['pw']})

/** The archive's header as text lines (the MAC line last, no final newline), and what follows it. */
function split(archive: Buffer): {lines: string[]; rest: Buffer} {
  const end = headerEnd(archive) as number
  return {
    lines: archive
      .subarray(0, end - 1)
      .toString('latin1')
      .split('\n'),
    rest: archive.subarray(end),
  }
}

/** `archive` with its header lines edited by `edit`. */
function edited(archive: Buffer, edit: (lines: string[]) => string[]): Buffer {
  const {lines, rest} = split(archive)
  return Buffer.concat([Buffer.from(`${edit([...lines]).join('\n')}\n`, 'latin1'), rest])
}

/** `line` with its character at `at` replaced by `char`. */
const replaceAt = (line: string, at: number, char: string) => line.slice(0, at) + char + line.slice(at + 1)
/** A base64 character other than `c` (the next one in the alphabet), keeping the value's low bits' parity. */
const otherChar = (c: string) => (c === 'A' ? 'B' : 'A')
/** The line index of our key's X25519 stanza (the second stanza) in `toKey`'s header. */
const OUR_STANZA = 3

/** An archive of `stanzas` around a fresh file key (encodeHeader's MAC), `PLAIN` as payload. */
async function archiveOf(makeStanzas: (fileKey: Buffer) => NativeStanza[]): Promise<Buffer> {
  const fileKey = randomBytes(16)
  const nonce = randomBytes(16)
  const header = encodeHeader(makeStanzas(fileKey), fileKey)
  return through(PLAIN, new EncryptStream(Buffer.concat([header, nonce]), payloadKey(fileKey, nonce)))
}

async function failure(archive: Buffer, opts: DecryptOptions, impl: AgeImplementation): Promise<BrError> {
  const error = await through(archive, createDecryptStream(opts, impl)).then(
    () => new Error(`${impl} accepted it`),
    (error_: unknown) => error_,
  )
  expect(error, String(error)).toBeInstanceOf(BrError)
  return error as BrError
}

interface Case {
  archive: () => Buffer | Promise<Buffer>
  name: string
  /** what the message must say: the case fails for the reason it names */
  says: RegExp
  with?: () => DecryptOptions
}

const CASES: Case[] = [
  {
    archive: () => edited(toKey, (l) => [l[0].replace('v1', 'v2'), ...l.slice(1)]),
    name: 'a bad version line',
    says: /^archive is not age-encrypted/,
  },
  {
    archive: () => edited(toKey, (l) => l.with(OUR_STANZA, replaceAt(l[OUR_STANZA], 12, '!'))),
    name: 'a stanza argument in bad base64',
    says: /invalid age header \(Unknown letter "!"/,
  },
  {
    archive: () =>
      edited(toKey, (l) => {
        const share = base64nopad.decode(l[OUR_STANZA].slice(10))
        const text = base64nopad.encode(share)
        // 32 bytes are 43 characters with 2 spare bits: set one, the bytes stay the same.
        const last = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
        const bumped = last[last.indexOf(text.at(-1)!) + 1]
        return l.with(OUR_STANZA, `-> X25519 ${text.slice(0, -1)}${bumped}`)
      }),
    name: 'a stanza argument in non-canonical base64 (padding bits set)',
    says: /invalid age header \(Non-zero padding/,
  },
  {
    archive: () => edited(toKey, (l) => l.with(OUR_STANZA + 1, 'A'.repeat(65))),
    name: 'a body line of 65 columns',
    says: /invalid age header \(Excess padding\)/,
  },
  {
    archive: () => edited(toKey, (l) => l.with(OUR_STANZA + 1, 'A'.repeat(64))),
    name: 'a body line of 64 columns with no short line after it',
    says: /invalid age header \(Unknown letter "-"/,
  },
  {
    archive: () => edited(toKey, (l) => l.slice(0, -1)),
    name: 'no MAC line',
    says: /^archive is truncated$/,
  },
  {
    archive: () => edited(toKey, (l) => l.with(-1, l.at(-1)!.replace('--- ', '---'))),
    name: 'a MAC line without its space',
    says: /invalid age header \(invalid header\)/,
  },
  {
    archive: () => edited(toKey, (l) => l.with(-1, replaceAt(l.at(-1)!, 4, otherChar(l.at(-1)![4])))),
    name: 'a wrong MAC',
    says: /its header does not authenticate/,
  },
  {
    archive: () => edited(toKey, (l) => l.with(-1, `--- ${base64nopad.encode(randomBytes(31))}`)),
    name: 'a MAC of 31 bytes',
    says: /its header does not authenticate/,
  },
  {
    archive: () =>
      edited(toKey, (l) => l.with(OUR_STANZA + 1, replaceAt(l[OUR_STANZA + 1], 0, otherChar(l[OUR_STANZA + 1][0])))),
    name: 'a flipped byte in our stanza’s body',
    says: /^no identity matches this archive$/,
  },
  {
    archive: () => edited(toKey, (l) => l.with(OUR_STANZA, replaceAt(l[OUR_STANZA], 10, otherChar(l[OUR_STANZA][10])))),
    name: 'a flipped byte in our stanza’s share',
    says: /^no identity matches this archive$/,
  },
  {
    archive: () => edited(toKey, (l) => l.with(OUR_STANZA, l[OUR_STANZA].replace('X25519', 'X25518'))),
    name: 'a flipped byte in our stanza’s type',
    says: /^no identity matches this archive$/,
  },
  {
    archive: () => edited(toKey, (l) => l.with(OUR_STANZA, `-> X25519 ${base64nopad.encode(randomBytes(31))}`)),
    name: 'an X25519 share of 31 bytes',
    says: /invalid age header \(invalid X25519 stanza\)/,
  },
  {
    archive: () => edited(toKey, (l) => l.with(OUR_STANZA, `${l[OUR_STANZA]} extra`)),
    name: 'an X25519 stanza of two arguments',
    says: /invalid age header \(invalid X25519 stanza\)/,
  },
  {
    archive: () => edited(toKey, (l) => l.with(OUR_STANZA + 1, base64nopad.encode(randomBytes(31)))),
    name: 'an X25519 body of 31 bytes',
    says: /invalid age header \(invalid stanza\)/,
  },
  {
    archive: () => edited(toKey, (l) => l.with(1, `-> X25519 ${base64nopad.encode(new Uint8Array(32))}`)),
    name: 'an all-zero X25519 share (a low-order point)',
    says: /invalid age header \(.+\)/,
  },
  {
    archive: () => edited(toKey, (l) => l.with(OUR_STANZA, l[OUR_STANZA].replace(' ', '  '))),
    name: 'an empty stanza argument',
    says: /invalid age header \(invalid stanza\)/,
  },
  {
    archive: () => edited(toKey, (l) => [...l.slice(0, 3), '->', ...l.slice(3)]),
    name: 'a line that is neither stanza nor MAC',
    says: /invalid age header \(invalid header\)/,
  },
  {
    archive: () => edited(toKey, (l) => l.with(OUR_STANZA, l[OUR_STANZA].replace(' ', '\t'))),
    name: 'a control character in a stanza line',
    says: /invalid age header \(invalid non-ASCII byte in header\)/,
  },
  {
    archive: () => edited(toPassphrase, (l) => [...l.slice(0, -1), ...split(toKey).lines.slice(1, 3), l.at(-1)!]),
    name: 'a scrypt stanza that is not alone',
    says: /invalid age header \(scrypt recipient is not the only one in the header\)/,
    with: passphrase,
  },
  {
    archive: () => edited(toPassphrase, (l) => l.with(1, l[1].replace(/ \d+$/, ' 21'))),
    name: 'a scrypt work factor of 2^21',
    says: /^archive asks for scrypt work factor is too high$/,
    with: passphrase,
  },
  {
    archive: () => edited(toPassphrase, (l) => l.with(1, l[1].replace(/ \d+$/, ' 08'))),
    name: 'a scrypt work factor of 08',
    says: /invalid age header \(invalid scrypt stanza\)/,
    with: passphrase,
  },
  {
    archive: () =>
      edited(toPassphrase, (l) => l.with(1, `-> scrypt ${base64nopad.encode(randomBytes(15))} ${FAST_SCRYPT}`)),
    name: 'a scrypt salt of 15 bytes',
    says: /invalid age header \(invalid scrypt stanza\)/,
    with: passphrase,
  },
  {
    archive: () => edited(toPassphrase, (l) => [...l.slice(0, 2), base64nopad.encode(randomBytes(48)), '', l.at(-1)!]),
    name: 'a scrypt body of 48 bytes',
    says: /invalid age header \(invalid stanza\)/,
    with: passphrase,
  },
  {
    archive: async () =>
      archiveOf((fileKey) => [
        ...Array.from({length: MAX_HEADER / 900}, () => ({args: ['grease'], body: randomBytes(700)})),
        wrapForX25519(fileKey, x25519Recipient(key.recipient)!),
      ]),
    name: 'a header past the size limit',
    says: /no end of the age header in its first MiB/,
  },
  {
    archive: () => edited(toKey, (l) => [l[0], ...Array.from({length: 20_000}, () => `-> grease ${'a'.repeat(50)}`)]),
    name: 'no header end in the first MiB',
    says: /no end of the age header in its first MiB/,
  },
]

// Cuts in each section: the version line, a stanza line, a body line, the MAC line, the nonce.
const cutInVersion = () => toKey.subarray(0, 10)
const cutAfterLine = (line: number, extra: number) => () => {
  const {lines} = split(toKey)
  return toKey.subarray(0, lines.slice(0, line).join('\n').length + 1 + extra)
}

for (const [section, archive] of Object.entries({
  'after the MAC line': cutAfterLine(6, 0),
  'in a body line': cutAfterLine(2, 20),
  'in a stanza line': cutAfterLine(1, 8),
  'in the MAC line': cutAfterLine(5, 10),
  'in the nonce': cutAfterLine(6, 9),
  'in the version line': cutInVersion,
})) {
  CASES.push({archive, name: `a cut ${section}`, says: /^archive is truncated$/})
}

describe('a damaged header', () => {
  it('is the header these cases edit: version, two X25519 stanzas, MAC', () => {
    const {lines} = split(toKey)
    expect(lines).toHaveLength(6)
    expect(lines[OUR_STANZA]).toMatch(/^-> X25519 \S{43}$/)
    expect(split(toPassphrase).lines).toHaveLength(4)
  })

  for (const c of CASES) {
    it(`${c.name}: both implementations refuse it with the same error`, async () => {
      const archive = await c.archive()
      const opts = (c.with ?? keys)()
      const [native, typage] = await Promise.all(IMPLS.map(async (impl) => failure(archive, opts, impl)))
      expect(native.message).toMatch(c.says)
      expect(native.exitCode).toBe(3)
      expect({code: typage.code, exit: typage.exitCode, hint: typage.suggestions, message: typage.message}).toEqual({
        code: native.code,
        exit: native.exitCode,
        hint: native.suggestions,
        message: native.message,
      })
    })
  }

  it('refuses a bad identity at once, in typage’s words', () => {
    for (const bad of ['AGE-SECRET-KEY-1BOGUS', 'AGE-SECRET-KEY-2', 'age1notasecret']) {
      const errors = IMPLS.map((impl) => {
        try {
          createDecryptStream({identities: [bad], passphrases: []}, impl)
          return 'accepted'
        } catch (error) {
          return (error as Error).message
        }
      })
      expect(errors[0], bad).toMatch(/^not an age identity: /)
      expect(errors[1], bad).toBe(errors[0])
    }
  })
})

/** How `opening` ended: the file key in hex, or the BrError headerError makes of the failure. */
async function outcome(opening: Promise<Uint8Array>): Promise<string> {
  return opening.then(
    (fileKey) => Buffer.from(fileKey).toString('hex'),
    (error: unknown) => {
      const e = headerError(error)
      return `${e.exitCode} ${e.message} / ${e.suggestions.join(' ')}`
    },
  )
}

describe('damage at every byte of a header', () => {
  it('ends the same way through age-open.ts and typage (an edit at every byte: one changed, cut out or added)', async () => {
    const {lines} = split(toKey)
    const header = Buffer.from(`${lines.join('\n')}\n`, 'latin1')
    const alphabet = Buffer.from('AB+/=-> \n\tXe1\u00E9', 'latin1')
    const typage = new Decrypter()
    typage.addIdentity(key.identity)
    const native = [new X25519Identity(key.identity)]
    let opened = 0
    // Every position once, the kind of edit and the byte turning with it: the same edits every
    // run (a failure names its header), each part of the header touched.
    for (let at = 0; at < header.length; at++) {
      const byte = alphabet[at % alphabet.length]
      const damaged = [
        Buffer.concat([header.subarray(0, at), Buffer.of(byte), header.subarray(at + 1)]),
        Buffer.concat([header.subarray(0, at), header.subarray(at + 1)]),
        Buffer.concat([header.subarray(0, at), Buffer.of(byte), header.subarray(at)]),
      ][at % 3]
      const [ours, theirs] = await Promise.all([
        outcome(openHeader(damaged, native)),
        outcome(typage.decryptHeader(damaged)),
      ])
      expect(ours, damaged.toString('latin1')).toBe(theirs)
      if (/^[\da-f]{32}$/.test(ours)) opened++
    }

    // Some edits leave it valid (a change in the other stanza's body, say): the rest must not all be one kind.
    expect(opened).toBeLessThan(header.length)
  })
})

const mine = (fileKey: Buffer) => wrapForX25519(fileKey, x25519Recipient(key.recipient)!)
const theirs = (fileKey: Buffer) => wrapForX25519(fileKey, x25519Recipient(other.recipient)!)
const grease = (size: number) => ({args: ['grease-type', 'arg1', 'Zm9v'], body: randomBytes(size)})

describe('what the native path accepts', () => {
  const SHAPES: Record<string, (fileKey: Buffer) => NativeStanza[]> = {
    'ours after an unknown type with a 48-byte body (an empty line after it)': (k) => [grease(48), mine(k)],
    'ours alone': (k) => [mine(k)],
    'ours between unknown types with empty and 100-byte bodies': (k) => [grease(0), mine(k), grease(100)],
    'ours last of three X25519 stanzas': (k) => [theirs(k), theirs(k), mine(k)],
  }

  for (const [shape, stanzas] of Object.entries(SHAPES)) {
    it(`${shape}: both implementations read it`, async () => {
      const archive = await archiveOf(stanzas)
      for (const impl of IMPLS) {
        expect((await through(archive, createDecryptStream(keys(), impl))).equals(PLAIN), impl).toBe(true)
      }
    })
  }

  it('a passphrase header: both implementations read it, with our scrypt identity or typage’s', async () => {
    for (const impl of IMPLS) {
      expect((await through(toPassphrase, createDecryptStream(passphrase(), impl))).equals(PLAIN), impl).toBe(true)
    }
  })

  describe.skipIf(!existsSync(AGE))('and age -d', () => {
    it('reads every shape the native path accepts', async () => {
      const identityFile = join(work.dir, 'key.txt')
      await writeFile(identityFile, `${key.identity}\n`)
      for (const [shape, stanzas] of Object.entries(SHAPES)) {
        const archive = await archiveOf(stanzas)
        expect((await through(archive, createDecryptStream(keys()))).equals(PLAIN)).toBe(true)
        const cli = spawnSync(AGE, ['-d', '-i', identityFile], {input: archive})
        expect(cli.stderr.toString(), shape).toBe('')
        expect(cli.stdout.equals(PLAIN), shape).toBe(true)
      }
    })
  })
})
