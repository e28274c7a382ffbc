import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {loadDecryptOptions, loadEncryptOptions} from '../../../src/lib/secrets.js'
import {tempDir} from '../../helpers/cli.js'

const KEY = 'AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX'
const RECIPIENT = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p'
let tmp: {cleanup: () => Promise<void>; path: string}

beforeAll(async () => {
  tmp = await tempDir()
})
afterAll(async () => tmp.cleanup())

describe('loadEncryptOptions', () => {
  it('refuses to back up unencrypted unless --no-encrypt is explicit', async () => {
    await expect(loadEncryptOptions({env: {}})).rejects.toMatchObject({
      code: 'usage',
      message: expect.stringContaining('--no-encrypt'),
    })
    expect(await loadEncryptOptions({env: {}, noEncrypt: true})).toEqual({type: 'none'})
  })

  it('takes recipients from flags, files and the environment', async () => {
    const file = join(tmp.path, 'recipients')
    await writeFile(file, `# ops team\n${RECIPIENT}\n\n`)
    expect(await loadEncryptOptions({env: {}, recipientsFiles: [file]})).toEqual({
      recipients: [RECIPIENT],
      type: 'recipients',
    })
    expect(await loadEncryptOptions({env: {MOCTL_BR_RECIPIENT: RECIPIENT}})).toEqual({
      recipients: [RECIPIENT],
      type: 'recipients',
    })
  })

  it('names a malformed recipient', async () => {
    await expect(loadEncryptOptions({env: {}, recipients: ['age2nope']})).rejects.toThrow(
      'recipient age2nope is not an age public key',
    )
  })

  it('reads a passphrase file without its final newline, and refuses recipients and passphrase together', async () => {
    const file = join(tmp.path, 'pass')
    await writeFile(file, 'correct horse\n')
    expect(await loadEncryptOptions({env: {}, passphraseFile: file})).toEqual({
      passphrase: 'correct horse',
      type: 'passphrase',
    })
    await expect(loadEncryptOptions({env: {}, passphraseFile: file, recipients: [RECIPIENT]})).rejects.toMatchObject({
      code: 'usage',
    })
  })

  it('names a missing or empty passphrase file', async () => {
    await expect(loadEncryptOptions({env: {}, passphraseFile: join(tmp.path, 'nope')})).rejects.toThrow(
      /cannot read --passphrase-file file .*nope: no such file/,
    )
    const empty = join(tmp.path, 'empty')
    await writeFile(empty, '\n')
    await expect(loadEncryptOptions({env: {}, passphraseFile: empty})).rejects.toThrow('is empty')
  })
})

describe('loadDecryptOptions', () => {
  it('reads identity files as age-keygen writes them, and MOCTL_BR_IDENTITY as a key or a file', async () => {
    const file = join(tmp.path, 'key')
    await writeFile(file, `# created: now\n# public key: ${RECIPIENT}\n${KEY}\n`)
    expect(await loadDecryptOptions({env: {}, identityFiles: [file]})).toEqual({identities: [KEY], passphrases: []})
    expect(await loadDecryptOptions({env: {MOCTL_BR_IDENTITY: KEY}})).toEqual({identities: [KEY], passphrases: []})
    expect(await loadDecryptOptions({env: {MOCTL_BR_IDENTITY: file}})).toEqual({identities: [KEY], passphrases: []})
    expect(await loadDecryptOptions({env: {MOCTL_BR_PASSPHRASE: 'pw'}})).toEqual({identities: [], passphrases: ['pw']})
  })

  it('names a file that is not an identity file', async () => {
    const file = join(tmp.path, 'not-a-key')
    await writeFile(file, 'hello\n')
    await expect(loadDecryptOptions({env: {}, identityFiles: [file]})).rejects.toThrow(
      `${file} is not an age identity file`,
    )
  })
})
