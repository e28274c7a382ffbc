/**
 * The all-typage implementation of age (age-encryption's own streams, header and payload): the
 * fallback, and the second implementation the interop tests check the native one against. Chosen
 * only by passing `impl: 'typage'` (Implementations), never by the environment.
 *
 * Guarantees: the same format and the same errors as the native path (integrity BrErrors in the
 * same words: the header is found, limited and its truncation named by the native path's code,
 * then typage parses and opens it); backpressure across the Node/web stream bridge. It is several times slower than
 * the native payload (LIBRARIES.md).
 */
import type {Decrypter} from 'age-encryption'

import {Duplex, Readable, Writable} from 'node:stream'

import type {EncryptOptions} from './types.js'

import {BrError, integrityError, usageError} from '../errors.js'
import {
  addRecipients,
  describe,
  headerEnd,
  headerError,
  HINT_OTHER_COPY,
  loadTypage,
  NONCE,
  TAMPERED,
  TRUNCATED,
} from './age-header.js'

/*
 * The typage path speaks web streams, which typage requires. eslint-plugin-n dates them to Node 21,
 * but Node 20 has them (since 16.5) and this path is tested on it.
 */
/* eslint-disable n/no-unsupported-features/node-builtins */
export async function typageEncrypt(opts: Exclude<EncryptOptions, {type: 'none'}>, logN: number): Promise<Duplex> {
  const encrypter = new (await loadTypage()).Encrypter()
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

/** `decrypter` is called when the first bytes arrive (it may still have to load typage). */
export function typageDecrypt(decrypter: () => Decrypter | Promise<Decrypter>): Duplex {
  const input = new TransformStream<Uint8Array, Uint8Array>()
  async function* plaintext(): AsyncGenerator<Buffer> {
    let output: ReadableStream<Uint8Array>
    try {
      output = await (await decrypter()).decrypt(input.readable)
    } catch (error) {
      throw headerError(error)
    }

    try {
      yield* chunks(output)
    } catch (error) {
      throw integrityError(`${TAMPERED} (or truncated): ${describe(error)}`, HINT_OTHER_COPY)
    }
  }

  return Duplex.from({
    readable: Readable.from(plaintext(), {objectMode: false}),
    writable: webWriter(input.writable, new HeaderGate()),
  })
}

/**
 * Holds the first bytes back until the header and the payload nonce are in, found as the native
 * path finds them (headerEnd): an input that is not age, a header past the size limit, or a cut
 * before the payload fail here in the native path's words, before typage parses the header.
 */
class HeaderGate {
  private head: Buffer | undefined = Buffer.alloc(0)

  /** At the end of the input: truncated while the header or its nonce is still held. */
  end(): BrError | undefined {
    return this.head ? integrityError(TRUNCATED, HINT_OTHER_COPY) : undefined
  }

  /** The bytes to pass on (none while held), or why the input is refused. */
  pass(chunk: Buffer): BrError | Buffer {
    if (!this.head) return chunk
    const head = this.head.length > 0 ? Buffer.concat([this.head, chunk]) : chunk
    const end = headerEnd(head)
    if (end instanceof BrError) return end
    if (end === -1 || head.length < end + NONCE) {
      this.head = head
      return Buffer.alloc(0)
    }

    this.head = undefined
    return head
  }
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

/**
 * A Node Writable into a web WritableStream, through `gate` when decrypting; each write waits
 * until typage took the chunk (backpressure).
 */
function webWriter(stream: WritableStream<Uint8Array>, gate?: HeaderGate): Writable {
  const writer = stream.getWriter()
  return new Writable({
    destroy(error, callback) {
      writer.abort(error).catch(() => {})
      callback(error)
    },
    final(callback) {
      const refused = gate?.end()
      if (refused) callback(refused)
      else writer.close().then(() => callback(), callback)
    },
    write(chunk: Buffer, _encoding, callback) {
      const bytes = gate ? gate.pass(chunk) : chunk
      if (bytes instanceof BrError) callback(bytes)
      else if (bytes.length === 0) callback()
      else writer.write(bytes).then(() => callback(), callback)
    },
  })
}

/* eslint-enable n/no-unsupported-features/node-builtins */
