/**
 * The age v1 header, by typage (age-encryption): building it around a file key we get to see,
 * finding where it ends in a stream, opening it with typage's Decrypter (the typage
 * implementation, and post-quantum identities), and saying in plain words why it would not open.
 * Also the key helpers (new identity, its recipient, checking recipients) that share typage's
 * parsing. X25519 recipients are checked and written by age-x25519.ts, and headers for X25519
 * identities and passphrases opened by age-open.ts, without typage.
 *
 * Guarantees: the header is typage's own bytes (stanzas, HMAC), so `age -d` and typage read it;
 * the file key comes from typage's Encrypter through a recipient that wraps nothing (two
 * behaviours of typage that test/unit/lib/archive/age-header.test.ts pins, with the exact version
 * in package.json); a header is found, and refused past 1 MiB, the same way for both
 * implementations (headerEnd); every failure to open is an integrity BrError (no identity
 * matches, tampered, absurd work factor), the same whichever parser failed (headerError maps
 * typage's words, which age-open.ts speaks too). It does not touch the payload (age-payload.ts)
 * or derive scrypt keys (age-scrypt.ts), and handles no armor or plugins.
 */
import type * as Typage from 'age-encryption'

import type {DecryptOptions} from './types.js'

import {BrError, integrityError, usageError} from '../errors.js'
import {lazyModule} from '../lazy.js'
import {x25519Recipient} from './age-x25519.js'

export const TRUNCATED = 'archive is truncated'
export const TAMPERED = 'archive was tampered with or corrupted'
export const NO_IDENTITY = 'no identity matches this archive'
export const HINT_OTHER_COPY = 'the stored copy is damaged: use another copy or another backup'

export const VERSION_LINE = 'age-encryption.org/v1\n'
/** The payload nonce that follows the header. */
export const NONCE = 16
/** A header is a few hundred bytes per recipient: past this it is not an age file. */
export const MAX_HEADER = 1024 * 1024
/** The final chunk of an empty payload: a bare ChaCha20-Poly1305 tag. */
const EMPTY_PAYLOAD_TAG = 16

// typage is imported when a key, header or recipient is first handled, not at CLI start-up
// (lib/lazy.ts): most commands never touch one. `loaded` lets the sync paths use it once it is in.
const importTypage = lazyModule('age-encryption', async () => import('age-encryption'))
let loaded: typeof Typage | undefined

/** typage (age-encryption), imported on the first call. */
export async function loadTypage(): Promise<typeof Typage> {
  loaded ??= await importTypage()
  return loaded
}

/** typage if a call to loadTypage has imported it already, else undefined. */
export function loadedTypage(): typeof Typage | undefined {
  return loaded
}

/** A new X25519 identity (AGE-SECRET-KEY-1…) and its recipient (age1…). */
export async function generateIdentity(): Promise<{identity: string; recipient: string}> {
  const typage = await loadTypage()
  const identity = await typage.generateX25519Identity()
  return {identity, recipient: await typage.identityToRecipient(identity)}
}

/** The recipient (public key) of an identity; a usage error when it is not an age secret key. */
export async function identityToRecipient(identity: string): Promise<string> {
  const typage = await loadTypage()
  try {
    return await typage.identityToRecipient(identity.trim())
  } catch (error) {
    throw usageError(`not an age identity: ${describe(error)}`, 'pass the AGE-SECRET-KEY-1… line of an identity file')
  }
}

/**
 * An age header for the recipients `add` gives typage's Encrypter, and the 16-byte file key it
 * wraps. The key is reported by `seen` when one of those recipients sees it (a scrypt stanza must
 * stand alone); without it, a recipient that wraps nothing is added to see it.
 * Encrypting nothing yields header ‖ nonce ‖ one empty final chunk (a bare tag): the header is
 * kept, the caller draws its own nonce for the real payload.
 */
export async function makeHeader(
  add: (encrypter: Typage.Encrypter) => void,
  seen?: () => Uint8Array | undefined,
): Promise<{fileKey: Uint8Array; header: Buffer}> {
  let fileKey: Uint8Array | undefined
  const encrypter = new (await loadTypage()).Encrypter()
  add(encrypter)

  if (!seen) {
    // Wraps nothing: it only sees the file key typage drew, next to the real recipients.
    encrypter.addRecipient({
      wrapFileKey(key: Uint8Array) {
        fileKey = Uint8Array.from(key)
        return []
      },
    })
  }

  const empty = await encrypter.encrypt(new Uint8Array(0))
  fileKey ??= seen?.()
  const header = Buffer.from(empty.subarray(0, empty.length - NONCE - EMPTY_PAYLOAD_TAG))
  const text = header.toString('latin1')
  if (!fileKey || !text.startsWith(VERSION_LINE) || !/\n--- [\w+/]+\n$/.test(text)) {
    throw new Error('age: could not capture the file key from typage (has its Encrypter changed?)')
  }

  return {fileKey, header}
}

/** A usage error when `opts` holds no identity and no passphrase. */
export function checkKeysGiven(opts: DecryptOptions): void {
  if (opts.identities.length === 0 && opts.passphrases.length === 0) {
    throw usageError(
      'the archive is encrypted: no identity or passphrase given',
      'pass --identity FILE or --passphrase-file FILE',
    )
  }
}

/**
 * A typage Decrypter (from `typage`, loaded) holding `opts`' identities, and its passphrases as
 * `passphrase` makes them (typage's own, or our scrypt identity).
 */
export function makeDecrypter(
  opts: DecryptOptions,
  passphrase: (p: string) => null | Typage.Identity,
  typage: typeof Typage,
): Typage.Decrypter {
  checkKeysGiven(opts)
  const decrypter = new typage.Decrypter()
  for (const identity of opts.identities) parseIdentity(identity, (i) => decrypter.addIdentity(i))

  for (const p of opts.passphrases) {
    const identity = passphrase(p)
    if (identity) decrypter.addIdentity(identity)
    else decrypter.addPassphrase(p)
  }

  return decrypter
}

/**
 * Where the header at the start of `head` ends (just past the MAC line); -1 while more bytes are
 * needed; an integrity error when it is not an age header, or none ends in its first MiB. Both
 * implementations find the header with it, so both refuse the same ones before parsing.
 */
export function headerEnd(head: Buffer): BrError | number {
  const start = head.subarray(0, Math.min(head.length, VERSION_LINE.length))
  if (!Buffer.from(VERSION_LINE).subarray(0, start.length).equals(start)) {
    return integrityError(
      'archive is not age-encrypted (no age v1 header)',
      'was it written with --no-encrypt? then no key is needed',
    )
  }

  // Stanza lines start with "-> " and bodies are base64: the first line starting "---" is the MAC.
  const mac = head.indexOf('\n---', 0, 'latin1')
  const end = mac === -1 ? -1 : head.indexOf('\n', mac + 1)
  // Past the limit whether its end has arrived yet or not: how the bytes were cut up changes nothing.
  if (end === -1 ? head.length > MAX_HEADER : end + 1 > MAX_HEADER) {
    return integrityError(`${TAMPERED}: no end of the age header in its first MiB`, HINT_OTHER_COPY)
  }

  return end === -1 ? -1 : end + 1
}

/**
 * Parses each recipient as encryption will (bech32 checksum, key length): a usage error naming the
 * bad one. X25519 recipients are parsed without typage (age-x25519.ts); typage is imported only
 * for the other types.
 */
export async function checkRecipients(recipients: string[]): Promise<void> {
  if (x25519Keys(recipients)) return
  addRecipients(new (await loadTypage()).Encrypter(), recipients)
}

/**
 * The public keys of `recipients` when every one is an X25519 recipient (age1…, whose header
 * age-x25519.ts writes), else undefined (typage's types: post-quantum, tag); a usage error naming
 * the first that is not a valid recipient, in typage's words.
 */
export function x25519Keys(recipients: string[]): Buffer[] | undefined {
  checkRecipientCount(recipients)
  const keys: Buffer[] = []
  for (const recipient of recipients) {
    const key = parseRecipient(recipient, (r) => x25519Recipient(r))
    if (!key) return undefined
    keys.push(key)
  }

  return keys
}

export function addRecipients(encrypter: Typage.Encrypter, recipients: string[]): void {
  checkRecipientCount(recipients)
  for (const recipient of recipients) parseRecipient(recipient, (r) => encrypter.addRecipient(r))
}

function checkRecipientCount(recipients: string[]): void {
  if (recipients.length === 0)
    throw usageError('no recipient to encrypt to', 'pass --recipient age1… or --passphrase-file FILE')
}

/** `parse` of the trimmed identity; what it throws becomes a usage error (in the words of what parsed it). */
export function parseIdentity<T>(identity: string, parse: (trimmed: string) => T): T {
  try {
    return parse(identity.trim())
  } catch (error) {
    throw usageError(`not an age identity: ${describe(error)}`, 'pass the AGE-SECRET-KEY-1… line of an identity file')
  }
}

/** `parse` of the trimmed recipient; what it throws becomes a usage error naming the recipient. */
function parseRecipient<T>(recipient: string, parse: (trimmed: string) => T): T {
  try {
    return parse(recipient.trim())
  } catch (error) {
    throw usageError(
      `recipient ${recipient} is not an age public key: ${describe(error)}`,
      'pass the age1… line that `moctl br key generate` printed',
    )
  }
}

/** typage's header errors, as integrity errors in the words the CLI promises. */
export function headerError(error: unknown): BrError {
  if (error instanceof BrError) return error
  const message = describe(error)
  if (/no identity matched/i.test(message)) {
    return integrityError(NO_IDENTITY, 'pass the identity (or passphrase) this backup was encrypted to')
  }

  if (/hmac/i.test(message)) return integrityError(`${TAMPERED}: its header does not authenticate`, HINT_OTHER_COPY)
  if (/work factor/i.test(message))
    return integrityError(`archive asks for ${message}`, 'it was not written by moctl br, or was tampered with')
  return integrityError(`${TAMPERED}: invalid age header (${message})`, HINT_OTHER_COPY)
}

export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
