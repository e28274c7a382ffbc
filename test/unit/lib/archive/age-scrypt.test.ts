/**
 * The passphrase's work factor is the caller's to choose, never the environment's: age's 2^18 by
 * default, 1-20 when given, and a header that asks for more than 2^20 is refused before any
 * scrypt runs (a forged header must not cost minutes and gigabytes).
 */
import {afterEach, describe, expect, it} from 'vitest'

import {createDecryptStream, createEncryptStream} from '../../../../src/lib/archive/age.js'
import {BrError} from '../../../../src/lib/errors.js'
import {through} from './fixture.js'

const SCRYPT_STANZA = /\n-> scrypt (\S{22}) (\d+)\n/
const saved = process.env.MOCTL_BR_SCRYPT_LOG_N

afterEach(() => {
  if (saved === undefined) delete process.env.MOCTL_BR_SCRYPT_LOG_N
  else process.env.MOCTL_BR_SCRYPT_LOG_N = saved
})

async function sealed(scryptLogN?: number): Promise<Buffer> {
  return through(Buffer.from('secret'), await createEncryptStream({passphrase: 'pw', scryptLogN, type: 'passphrase'}))
}

describe('scrypt work factor', () => {
  it('is 18 by default, whatever MOCTL_BR_SCRYPT_LOG_N says', async () => {
    process.env.MOCTL_BR_SCRYPT_LOG_N = '1'
    const header = (await sealed()).toString('latin1')
    expect(SCRYPT_STANZA.exec(header)?.[2]).toBe('18')
  })

  it('is the option when given, and the option is checked', async () => {
    expect(SCRYPT_STANZA.exec((await sealed(10)).toString('latin1'))?.[2]).toBe('10')
    for (const logN of [0, 21, 1.5]) {
      const error = await sealed(logN).catch((error_: unknown) => error_)
      expect(error, String(logN)).toBeInstanceOf(BrError)
      expect((error as BrError).code).toBe('usage')
      expect((error as BrError).message).toBe(`scrypt work factor 2^${logN} is out of range`)
    }
  })

  for (const impl of ['native', 'typage'] as const) {
    it(`${impl}: a header asking for 2^21 is refused as an integrity error, at once`, async () => {
      const bytes = await sealed(10)
      const forged = Buffer.from(bytes.toString('latin1').replace(SCRYPT_STANZA, '\n-> scrypt $1 21\n'), 'latin1')
      const error = await through(forged, createDecryptStream({identities: [], passphrases: ['pw']}, impl)).catch(
        (error_: unknown) => error_,
      )
      expect(error).toBeInstanceOf(BrError)
      expect((error as BrError).code).toBe('integrity')
      // Refused from the header, before any key derivation: the message says the work factor is refused
      // (2^21 would take seconds and 2 GiB). No clock is asserted: speed is the benches'.
      expect((error as BrError).message).toMatch(/work factor/)
    })
  }
})
