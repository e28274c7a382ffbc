/**
 * Opening an age header on node:crypto (C2SP age, "Header"): parse it, have identities unwrap the
 * file key from its stanzas, check its MAC. What verify, restore and every manifest read need
 * for X25519 identities and passphrases, without importing typage (age-encryption), whose import
 * is ~60 module files and 50-150 ms of CPU.
 *
 * Guarantees: exactly typage's (0.3.1) reading, step for step and in its words, so a header
 * fails here as it fails there and age-header.ts's headerError gives the same BrError: ASCII
 * lines; the version line; stanzas `-> arg…` with no empty argument and base64 bodies (canonical,
 * unpadded: @scure/base, as typage) in lines of 48 bytes ended by a short one; a `--- ` MAC line;
 * identities tried in their order, each over the stanzas in theirs (a malformed stanza of its own
 * type stops it; other types are skipped); only then the HMAC-SHA-256 of the header up to `---`.
 * test/unit/lib/archive/age-open.test.ts runs both on the same damaged headers. It does not
 * find where a header ends or limit its size (age-header.ts headerEnd does, before this), nor
 * open stanzas of post-quantum identities (typage does, age.ts decides).
 */
import {base64nopad} from '@scure/base'
import {createHmac, hkdfSync, timingSafeEqual} from 'node:crypto'

/** A stanza as the header encodes it: `-> args…`, then the body in base64 lines of 48 bytes. */
export interface NativeStanza {
  args: string[]
  body: Uint8Array
}

/** What unwraps a file key from stanzas: typage's Identity, on our stanzas. */
export interface StanzaIdentity {
  unwrapFileKey(stanzas: NativeStanza[]): Promise<null | Uint8Array>
}

export interface ParsedHeader {
  mac: Uint8Array
  stanzas: NativeStanza[]
  /** the header up to and including `---`: what the MAC authenticates */
  unsigned: Buffer
}

const VERSION = 'age-encryption.org/v1'
/** A stanza body line holds 48 bytes (64 base64 columns); a shorter one ends the body. */
export const BODY_LINE = 48

/** The file key `identities` unwrap from `header` (version line to MAC line), its MAC checked. */
export async function openHeader(header: Buffer, identities: StanzaIdentity[]): Promise<Uint8Array> {
  const {mac, stanzas, unsigned} = parseHeader(header)
  let fileKey: null | Uint8Array = null
  for (const identity of identities) {
    // eslint-disable-next-line no-await-in-loop -- in order, as typage: the first that unwraps wins
    fileKey = await identity.unwrapFileKey(stanzas)
    if (fileKey !== null) break
  }

  if (fileKey === null) throw new Error("no identity matched any of the file's recipients")
  const expected = headerMac(fileKey, unsigned)
  if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) throw new Error('invalid header HMAC')
  return fileKey
}

/** age's header MAC: HMAC-SHA-256 under HKDF(file key, "header") of the header up to `---`. */
export function headerMac(fileKey: Uint8Array, unsigned: Buffer): Buffer {
  const macKey = Buffer.from(hkdfSync('sha256', fileKey, Buffer.alloc(0), 'header', 32))
  return createHmac('sha256', macKey).update(unsigned).digest()
}

/** The stanzas and MAC of `header`; throws typage's error where typage's parser throws. */
export function parseHeader(header: Buffer): ParsedHeader {
  const lines = new LineReader(header)
  const version = lines.next()
  if (version !== VERSION) throw new Error(`invalid version ${version ?? 'line'}`)
  const stanzas: NativeStanza[] = []
  for (;;) {
    const line = lines.next()
    if (line === null) throw new Error('invalid stanza')
    const args = line.split(' ')
    if (args.length < 2 || args.shift() !== '->') {
      if (!line.startsWith('--- ')) throw new Error('invalid header')
      const mac = base64nopad.decode(line.slice(4))
      // Up to the end of `---`: the MAC line less its newline and its ` <mac>`.
      return {mac, stanzas, unsigned: header.subarray(0, lines.offset - 1 - line.length + 3)}
    }

    if (args.some((arg) => arg.length === 0)) throw new Error('invalid stanza')
    stanzas.push({args, body: readBody(lines)})
  }
}

function readBody(lines: LineReader): Buffer {
  const parts: Uint8Array[] = []
  for (;;) {
    const line = lines.next()
    if (line === null) throw new Error('invalid stanza')
    const part = base64nopad.decode(line)
    if (part.length > BODY_LINE) throw new Error('invalid stanza')
    parts.push(part)
    if (part.length < BODY_LINE) return Buffer.concat(parts)
  }
}

/** The header's lines, each checked to be printable ASCII as typage checks them; null at the end. */
class LineReader {
  offset = 0

  constructor(private readonly bytes: Buffer) {}

  next(): null | string {
    const end = this.bytes.indexOf(0x0a, this.offset)
    if (end === -1) return null
    const line = this.bytes.subarray(this.offset, end)
    if (line.some((b) => b < 0x20 || b > 0x7e)) throw new Error('invalid non-ASCII byte in header')
    this.offset = end + 1
    return line.toString('latin1')
  }
}
