/**
 * age v1 encryption and decryption as Node streams (C2SP age: X25519 recipients or one scrypt
 * passphrase; HKDF-SHA-256 payload key; 64 KiB ChaCha20-Poly1305 STREAM chunks).
 *
 * The header (stanzas, HMAC) is built and checked by typage (age-encryption): a capturing
 * recipient sees the file key as typage wraps it, and `Decrypter.decryptHeader` gives it back.
 * The payload runs on node:crypto, several times faster than typage's pure-JS cipher. The scrypt
 * stanza is computed with node:crypto's scrypt too: native and off the event loop, and the only
 * way to see the file key in passphrase mode, where typage takes no other recipient.
 * `MOCTL_BR_AGE=typage` runs everything through typage instead: the fallback, and a second
 * implementation for the interop tests.
 *
 * Guarantees: output is plain age v1 that `age -d` and typage decrypt; both implementations read
 * each other's and age's files; every failure to decrypt is an integrity BrError with a plain
 * message (no identity matches, truncated, tampered); no plaintext leaves the native decryptor
 * before its chunk has authenticated. It does not: handle armor or plugins, or tell a cut inside
 * the last chunk from tampering (the caller's size check against the record does that).
 */
import {
  Decrypter,
  Encrypter,
  generateX25519Identity,
  type Identity,
  type Recipient,
  Stanza,
  identityToRecipient as typageIdentityToRecipient,
} from 'age-encryption'
import {
  createCipheriv,
  createDecipheriv,
  hkdfSync,
  randomBytes,
  scrypt as scryptCallback,
  type ScryptOptions,
} from 'node:crypto'
import {Duplex, PassThrough, Readable, Transform, type TransformCallback, Writable} from 'node:stream'

import type {AgeImplementation, DecryptOptions, EncryptOptions} from './types.js'

import {BrError, integrityError, usageError} from '../errors.js'

export type {AgeImplementation} from './types.js'

export const TRUNCATED = 'archive is truncated'
export const TAMPERED = 'archive was tampered with or corrupted'
export const NO_IDENTITY = 'no identity matches this archive'

const VERSION_LINE = 'age-encryption.org/v1\n'
const CHUNK = 64 * 1024
const TAG = 16
const SEALED_CHUNK = CHUNK + TAG
const NONCE = 16
/** A header is a few hundred bytes per recipient: past this it is not an age file. */
const MAX_HEADER = 1024 * 1024
/** typage's default scrypt work factor (2^18), also age's. */
const DEFAULT_SCRYPT_LOG_N = 18
/** typage refuses to decrypt above 2^20: never write what it cannot read. */
const MAX_SCRYPT_LOG_N = 20
const SCRYPT_LABEL = 'age-encryption.org/v1/scrypt'
const HINT_OTHER_COPY = 'the stored copy is damaged: use another copy or another backup'

const selected = selectImplementation(process.env.MOCTL_BR_AGE)

/** The implementation used when none is named: native unless MOCTL_BR_AGE=typage. */
export function ageImplementation(): AgeImplementation {
  if (selected instanceof BrError) throw selected
  return selected
}

/** A new X25519 identity (AGE-SECRET-KEY-1…) and its recipient (age1…). */
export async function generateIdentity(): Promise<{identity: string; recipient: string}> {
  const identity = await generateX25519Identity()
  return {identity, recipient: await typageIdentityToRecipient(identity)}
}

/** The recipient (public key) of an identity; a usage error when it is not an age secret key. */
export async function identityToRecipient(identity: string): Promise<string> {
  try {
    return await typageIdentityToRecipient(identity.trim())
  } catch (error) {
    throw usageError(`not an age identity: ${describe(error)}`, 'pass the AGE-SECRET-KEY-1… line of an identity file')
  }
}

/**
 * A stream that age-encrypts what is written to it. `{type: 'none'}` gives a pass-through, so a
 * pipeline keeps its shape for unencrypted (--no-encrypt) archives.
 */
export async function createEncryptStream(
  opts: EncryptOptions,
  impl: AgeImplementation = ageImplementation(),
): Promise<Duplex> {
  if (opts.type === 'none') return new PassThrough()
  const logN = scryptLogN()
  if (impl === 'typage') return typageEncrypt(opts, logN)

  let fileKey: Uint8Array | undefined
  const encrypter = new Encrypter()
  if (opts.type === 'passphrase') {
    if (opts.passphrase === '') throw usageError('the passphrase is empty')
    encrypter.addRecipient(
      new ScryptRecipient(opts.passphrase, logN, (key) => {
        fileKey = key
      }),
    )
  } else {
    addRecipients(encrypter, opts.recipients)
    // Wraps nothing: it only sees the file key typage drew, next to the real recipients.
    encrypter.addRecipient({
      wrapFileKey(key: Uint8Array) {
        fileKey = Uint8Array.from(key)
        return []
      },
    })
  }

  // Encrypting nothing yields header ‖ nonce ‖ one empty final chunk (a bare 16-byte tag): keep
  // the header, draw our own nonce for the real payload.
  const empty = await encrypter.encrypt(new Uint8Array(0))
  const header = Buffer.from(empty.subarray(0, empty.length - NONCE - TAG))
  const text = header.toString('latin1')
  if (!fileKey || !text.startsWith(VERSION_LINE) || !/\n--- [\w+/]+\n$/.test(text)) {
    throw new Error('age: could not capture the file key from typage (has its Encrypter changed?)')
  }

  const nonce = randomBytes(NONCE)
  return new EncryptStream(Buffer.concat([header, nonce]), payloadKey(fileKey, nonce))
}

/** A stream that decrypts an age file written to it, header first. */
export function createDecryptStream(opts: DecryptOptions, impl: AgeImplementation = ageImplementation()): Duplex {
  if (opts.identities.length === 0 && opts.passphrases.length === 0) {
    throw usageError(
      'the archive is encrypted: no identity or passphrase given',
      'pass --identity FILE or --passphrase-file FILE',
    )
  }

  const decrypter = new Decrypter()
  for (const identity of opts.identities) {
    try {
      decrypter.addIdentity(identity.trim())
    } catch (error) {
      throw usageError(`not an age identity: ${describe(error)}`, 'pass the AGE-SECRET-KEY-1… line of an identity file')
    }
  }

  for (const passphrase of opts.passphrases) {
    if (impl === 'typage') decrypter.addPassphrase(passphrase)
    else decrypter.addIdentity(new ScryptIdentity(passphrase))
  }

  return impl === 'typage' ? typageDecrypt(decrypter) : new DecryptStream(decrypter)
}

/** HKDF-SHA-256(ikm = file key, salt = nonce, info = "payload"): the spec's payload key. */
function payloadKey(fileKey: Uint8Array, nonce: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', fileKey, nonce, 'payload', 32))
}

/** STREAM nonce: an 11-byte big-endian chunk counter, then 1 for the last chunk, else 0. */
function chunkNonce(counter: number, last: boolean): Buffer {
  const nonce = Buffer.alloc(12)
  // 6 bytes of counter are 2^48 chunks of 64 KiB, far past any archive: the upper 5 stay zero.
  nonce.writeUIntBE(counter, 5, 6)
  nonce[11] = last ? 1 : 0
  return nonce
}

function seal(key: Buffer, nonce: Buffer, plaintext: Uint8Array): Buffer[] {
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, {authTagLength: TAG})
  const sealed = cipher.update(plaintext)
  cipher.final()
  return [sealed, cipher.getAuthTag()]
}

/** The plaintext, or null when the chunk does not authenticate under this key and nonce. */
function open(key: Buffer, nonce: Buffer, sealed: Buffer): Buffer | null {
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

/**
 * Cuts a byte stream into fixed-size chunks without copying them, except across a write boundary.
 * A full chunk is only released once more bytes follow it: age flags the last chunk, and a
 * payload whose size is a multiple of the chunk size ends with a full last chunk.
 */
class Chunker {
  private filled = 0
  private readonly pending: Buffer

  constructor(private readonly size: number) {
    this.pending = Buffer.allocUnsafe(size)
  }

  /** Calls `emit` (which must use the bytes at once: they may be overwritten) for each chunk known not to be last. */
  feed(chunk: Buffer, emit: (bytes: Buffer) => void): void {
    let offset = 0
    if (this.filled > 0) {
      offset = Math.min(this.size - this.filled, chunk.length)
      chunk.copy(this.pending, this.filled, 0, offset)
      this.filled += offset
      if (offset === chunk.length) return
      emit(this.pending)
      this.filled = 0
    }

    while (chunk.length - offset > this.size) {
      emit(chunk.subarray(offset, offset + this.size))
      offset += this.size
    }

    this.filled = chunk.copy(this.pending, 0, offset)
  }

  /** What is held back: the last chunk, once the input has ended. */
  rest(): Buffer {
    return this.pending.subarray(0, this.filled)
  }
}

/** The payload writer: seals each 64 KiB chunk as it completes, the last one flagged at the end. */
class EncryptStream extends Transform {
  private readonly chunker = new Chunker(CHUNK)
  private counter = 0

  constructor(
    prefix: Buffer,
    private readonly key: Buffer,
  ) {
    super()
    this.push(prefix)
  }

  override _flush(callback: TransformCallback): void {
    for (const part of seal(this.key, chunkNonce(this.counter, true), this.chunker.rest())) this.push(part)
    callback()
  }

  override _transform(chunk: Buffer, _encoding: string, callback: TransformCallback): void {
    // Sealed pieces are pushed as they are: concatenating them would copy every byte once more.
    this.chunker.feed(chunk, (plaintext) => {
      for (const part of seal(this.key, chunkNonce(this.counter++, false), plaintext)) this.push(part)
    })
    callback()
  }
}

/** The payload reader: finds the header, has typage check it, then opens chunk after chunk. */
class DecryptStream extends Transform {
  private readonly chunker = new Chunker(SEALED_CHUNK)
  private counter = 0
  private head: Buffer = Buffer.alloc(0)
  private headerSize = 0
  private key: Buffer | undefined

  constructor(private readonly decrypter: Decrypter) {
    super()
  }

  override _flush(callback: TransformCallback): void {
    const last = this.chunker.rest()
    if (!this.key || last.length < TAG) {
      callback(integrityError(TRUNCATED, HINT_OTHER_COPY))
      return
    }

    const plaintext = open(this.key, chunkNonce(this.counter, true), last)
    if (plaintext === null) {
      // Cut right after a full chunk, what is left opens as a middle chunk.
      const cutAtChunk = last.length === SEALED_CHUNK && open(this.key, chunkNonce(this.counter, false), last) !== null
      callback(
        cutAtChunk
          ? integrityError(TRUNCATED, HINT_OTHER_COPY)
          : integrityError(`${TAMPERED} (or truncated): its last chunk does not authenticate`, HINT_OTHER_COPY),
      )
      return
    }

    if (plaintext.length === 0 && this.counter > 0) {
      callback(integrityError(`${TAMPERED}: an empty last chunk`, HINT_OTHER_COPY))
      return
    }

    this.push(plaintext)
    callback()
  }

  override _transform(chunk: Buffer, _encoding: string, callback: TransformCallback): void {
    if (this.key) {
      this.payload(chunk, callback)
      return
    }

    this.head = this.head.length > 0 ? Buffer.concat([this.head, chunk]) : Buffer.from(chunk)
    const end = this.headerEnd()
    if (end instanceof BrError) {
      callback(end)
      return
    }

    if (end === -1 || this.head.length < end + NONCE) {
      callback()
      return
    }

    const header = this.head.subarray(0, end)
    const nonce = this.head.subarray(end, end + NONCE)
    this.decrypter.decryptHeader(header).then(
      (fileKey) => {
        this.key = payloadKey(fileKey, nonce)
        this.headerSize = end + NONCE
        const rest = this.head.subarray(end + NONCE)
        this.head = Buffer.alloc(0)
        this.payload(rest, callback)
      },
      (error: unknown) => callback(headerError(error)),
    )
  }

  /** Where the header ends (just past the MAC line), -1 while not yet known. */
  private headerEnd(): BrError | number {
    const head = this.head.subarray(0, Math.min(this.head.length, VERSION_LINE.length))
    if (!Buffer.from(VERSION_LINE).subarray(0, head.length).equals(head)) {
      return integrityError(
        'archive is not age-encrypted (no age v1 header)',
        'was it written with --no-encrypt? then no key is needed',
      )
    }

    // Stanza lines start with "-> " and bodies are base64: the first line starting "---" is the MAC.
    const mac = this.head.indexOf('\n---', 0, 'latin1')
    const end = mac === -1 ? -1 : this.head.indexOf('\n', mac + 1)
    if (end === -1) {
      return this.head.length > MAX_HEADER
        ? integrityError(`${TAMPERED}: no end of the age header in its first MiB`, HINT_OTHER_COPY)
        : -1
    }

    return end + 1
  }

  private payload(chunk: Buffer, callback: TransformCallback): void {
    const key = this.key!
    let failed: BrError | undefined
    this.chunker.feed(chunk, (sealed) => {
      if (failed) return
      const plaintext = open(key, chunkNonce(this.counter, false), sealed)
      if (plaintext === null) {
        const at = this.headerSize + this.counter * SEALED_CHUNK
        failed = integrityError(
          `${TAMPERED}: chunk ${this.counter} (at byte ${at}) does not authenticate`,
          HINT_OTHER_COPY,
        )
        return
      }

      this.counter++
      this.push(plaintext)
    })
    callback(failed)
  }
}

/**
 * age's scrypt recipient (spec: "The scrypt recipient type") on node:crypto. It reports the file
 * key it wraps: that is how the native payload gets it in passphrase mode.
 */
class ScryptRecipient implements Recipient {
  constructor(
    private readonly passphrase: string,
    private readonly logN: number,
    private readonly capture: (fileKey: Uint8Array) => void,
  ) {}

  async wrapFileKey(fileKey: Uint8Array): Promise<Stanza[]> {
    this.capture(Uint8Array.from(fileKey))
    const salt = randomBytes(16)
    const key = await scryptKey(this.passphrase, salt, this.logN)
    const body = Buffer.concat(seal(key, Buffer.alloc(12), fileKey))
    return [new Stanza(['scrypt', salt.toString('base64').replace(/=+$/, ''), String(this.logN)], body)]
  }
}

/** age's scrypt identity, with typage's checks, on node:crypto's scrypt (native, off the event loop). */
class ScryptIdentity implements Identity {
  constructor(private readonly passphrase: string) {}

  async unwrapFileKey(stanzas: Stanza[]): Promise<null | Uint8Array> {
    for (const s of stanzas) {
      if (s.args[0] !== 'scrypt') continue
      // The spec: a scrypt stanza must stand alone, or a passphrase file could be re-targeted.
      if (stanzas.length !== 1) throw new Error('scrypt recipient is not the only one in the header')
      const [, salt64 = '', logN64 = ''] = s.args
      const salt = Buffer.from(salt64, 'base64')
      const canonical = salt.toString('base64').replace(/=+$/, '') === salt64
      if (
        s.args.length !== 3 ||
        !/^[1-9]\d*$/.test(logN64) ||
        salt.length !== 16 ||
        !canonical ||
        s.body.length !== 32
      ) {
        throw new Error('invalid scrypt stanza')
      }

      const logN = Number(logN64)
      if (logN > MAX_SCRYPT_LOG_N) throw new Error('scrypt work factor is too high')
      // eslint-disable-next-line no-await-in-loop -- a scrypt header has exactly one stanza
      const key = await scryptKey(this.passphrase, salt, logN)
      const fileKey = open(key, Buffer.alloc(12), Buffer.from(s.body))
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

/** Parses each recipient as encryption will (bech32 checksum, key length): a usage error naming the bad one. */
export function checkRecipients(recipients: string[]): void {
  addRecipients(new Encrypter(), recipients)
}

function addRecipients(encrypter: Encrypter, recipients: string[]): void {
  if (recipients.length === 0)
    throw usageError('no recipient to encrypt to', 'pass --recipient age1… or --passphrase-file FILE')
  for (const recipient of recipients) {
    try {
      encrypter.addRecipient(recipient.trim())
    } catch (error) {
      throw usageError(
        `recipient ${recipient} is not an age public key: ${describe(error)}`,
        'pass the age1… line that `moctl br key generate` printed',
      )
    }
  }
}

/*
 * The typage path speaks web streams, which typage requires. eslint-plugin-n dates them to Node 21,
 * but Node 20 has them (since 16.5) and this path is tested on it.
 */
/* eslint-disable n/no-unsupported-features/node-builtins */
async function typageEncrypt(opts: Exclude<EncryptOptions, {type: 'none'}>, logN: number): Promise<Duplex> {
  const encrypter = new Encrypter()
  if (opts.type === 'passphrase') {
    if (opts.passphrase === '') throw usageError('the passphrase is empty')
    encrypter.setPassphrase(opts.passphrase)
    encrypter.setScryptWorkFactor(logN)
  } else {
    addRecipients(encrypter, opts.recipients)
  }

  const input = new TransformStream<Uint8Array, Uint8Array>()
  const output = await encrypter.encrypt(input.readable)
  return Duplex.from({
    readable: Readable.from(chunks(output), {objectMode: false}),
    writable: webWriter(input.writable),
  })
}

function typageDecrypt(decrypter: Decrypter): Duplex {
  const input = new TransformStream<Uint8Array, Uint8Array>()
  async function* plaintext(): AsyncGenerator<Buffer> {
    let output: ReadableStream<Uint8Array>
    try {
      output = await decrypter.decrypt(input.readable)
    } catch (error) {
      throw headerError(error)
    }

    try {
      yield* chunks(output)
    } catch (error) {
      throw integrityError(`${TAMPERED} (or truncated): ${describe(error)}`, HINT_OTHER_COPY)
    }
  }

  return Duplex.from({readable: Readable.from(plaintext(), {objectMode: false}), writable: webWriter(input.writable)})
}

/**
 * A web stream's chunks as Buffers.
 * @yields each chunk, without copying
 */
async function* chunks(stream: ReadableStream<Uint8Array>): AsyncGenerator<Buffer> {
  const reader = stream.getReader()
  try {
    for (;;) {
      // eslint-disable-next-line no-await-in-loop -- a stream is read one chunk after another
      const {done, value} = await reader.read()
      if (done) return
      yield Buffer.from(value.buffer, value.byteOffset, value.byteLength)
    }
  } finally {
    reader.releaseLock()
  }
}

/** A Node Writable into a web WritableStream; each write waits until typage took the chunk (backpressure). */
function webWriter(stream: WritableStream<Uint8Array>): Writable {
  const writer = stream.getWriter()
  return new Writable({
    destroy(error, callback) {
      writer.abort(error).catch(() => {})
      callback(error)
    },
    final(callback) {
      writer.close().then(() => callback(), callback)
    },
    write(chunk: Buffer, _encoding, callback) {
      writer.write(chunk).then(() => callback(), callback)
    },
  })
}

/* eslint-enable n/no-unsupported-features/node-builtins */

/** typage's header errors, as integrity errors in the words the CLI promises. */
function headerError(error: unknown): BrError {
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

function scryptLogN(): number {
  const raw = process.env.MOCTL_BR_SCRYPT_LOG_N
  if (raw === undefined || raw === '') return DEFAULT_SCRYPT_LOG_N
  const logN = Number(raw)
  if (!Number.isInteger(logN) || logN < 1 || logN > MAX_SCRYPT_LOG_N) {
    throw usageError(
      `MOCTL_BR_SCRYPT_LOG_N=${raw} is out of range`,
      `use 1-${MAX_SCRYPT_LOG_N} (tests only), or unset it for ${DEFAULT_SCRYPT_LOG_N}`,
    )
  }

  return logN
}

function selectImplementation(forced: string | undefined): AgeImplementation | BrError {
  if (forced === undefined || forced === '' || forced === 'native') return 'native'
  if (forced === 'typage') return 'typage'
  return usageError(`MOCTL_BR_AGE=${forced} is not an age implementation`, 'use native or typage, or unset it')
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
