import {readFile, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {generateKeyPair} from '../../../src/lib/keys.js'
import {loadDecryptOptions, loadEncryptOptions, loadTrustedSigners} from '../../../src/lib/secrets.js'
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
    expect(await loadEncryptOptions({env: {}, noEncrypt: true})).toEqual({encrypt: {type: 'none'}, signing: null})
  })

  it('takes recipients from flags, files and the environment', async () => {
    const file = join(tmp.path, 'recipients')
    await writeFile(file, `# ops team\n${RECIPIENT}\n\n`)
    expect(await loadEncryptOptions({env: {}, recipientsFiles: [file]})).toEqual({
      encrypt: {recipients: [RECIPIENT], type: 'recipients'},
      signing: null,
    })
    expect(await loadEncryptOptions({env: {MOCTL_BR_RECIPIENT: RECIPIENT}})).toEqual({
      encrypt: {recipients: [RECIPIENT], type: 'recipients'},
      signing: null,
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
      encrypt: {passphrase: 'correct horse', type: 'passphrase'},
      signing: null,
    })
    await expect(loadEncryptOptions({env: {}, passphraseFile: file, recipients: [RECIPIENT]})).rejects.toMatchObject({
      code: 'usage',
    })
  })

  it('names a missing or empty passphrase file', async () => {
    await expect(loadEncryptOptions({env: {}, passphraseFile: join(tmp.path, 'nope')})).rejects.toThrow(
      /cannot read --passphrase-file .*nope: no such file/,
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
    const none = {passphrases: [], signers: []}
    expect(await loadDecryptOptions({env: {}, identityFiles: [file]})).toEqual({...none, identities: [KEY]})
    expect(await loadDecryptOptions({env: {MOCTL_BR_IDENTITY: KEY}})).toEqual({...none, identities: [KEY]})
    expect(await loadDecryptOptions({env: {MOCTL_BR_IDENTITY: file}})).toEqual({...none, identities: [KEY]})
    expect(await loadDecryptOptions({env: {MOCTL_BR_PASSPHRASE: 'pw'}})).toEqual({
      identities: [],
      passphrases: ['pw'],
      signers: [],
    })
  })

  it('names a file that is not an identity file', async () => {
    const file = join(tmp.path, 'not-a-key')
    await writeFile(file, 'hello\n')
    await expect(loadDecryptOptions({env: {}, identityFiles: [file]})).rejects.toThrow(
      `${file} is not an age identity file`,
    )
  })
})

describe('writer and reader keys', () => {
  it('a writer key encrypts to its recipient and signs; its reader key decrypts and trusts that signer', async () => {
    const dir = join(tmp.path, 'new-dir', 'keys')
    const keys = await generateKeyPair(join(dir, 'writer.key'), join(dir, 'reader.key'))
    const write = await loadEncryptOptions({env: {}, writerKeyFile: keys.writerKey})
    expect(write.encrypt).toEqual({recipients: [keys.recipient], type: 'recipients'})
    expect(write.signing?.signer).toBe(keys.signer)
    const read = await loadDecryptOptions({env: {}, identityFiles: [keys.readerKey]})
    expect(read.identities).toHaveLength(1)
    expect(read.signers).toEqual([keys.signer])
    // the backup host trusts what it signed itself (prune, delete)
    expect(await loadTrustedSigners({env: {MOCTL_BR_WRITER_KEY: keys.writerKey}})).toEqual([keys.signer])
  })

  it('names a writer key given where a reader key belongs, and the reverse, without printing either', async () => {
    const keys = await generateKeyPair(join(tmp.path, 'w2'), join(tmp.path, 'r2'))
    const writerText = await readFile(keys.writerKey, 'utf8')
    const readerText = await readFile(keys.readerKey, 'utf8')
    const asIdentity = loadDecryptOptions({env: {}, identityFiles: [keys.writerKey]})
    await expect(asIdentity).rejects.toMatchObject({code: 'usage', message: expect.stringContaining('is a writer key')})
    const asWriter = loadEncryptOptions({env: {}, writerKeyFile: keys.readerKey})
    await expect(asWriter).rejects.toMatchObject({code: 'usage', message: expect.stringContaining('is a reader key')})
    for (const p of [asIdentity, asWriter]) {
      const message = await p.catch((error: Error) => error.message)
      for (const line of [...writerText.split('\n'), ...readerText.split('\n')].filter((l) => /SECRET/.test(l)))
        expect(message).not.toContain(line)
    }
  })

  it('never prints a secret given in the wrong place', async () => {
    const secret = KEY
    // a secret key passed as a recipient
    const asRecipient = await loadEncryptOptions({env: {}, recipients: [secret]}).catch((error: Error) => error)
    expect((asRecipient as Error).message).toMatch(/secret key was given as a recipient/)
    expect(JSON.stringify(asRecipient)).not.toContain(secret)
    expect((asRecipient as Error).message).not.toContain(secret.slice(16))
    // an identity in the environment that is neither a key nor a file (a mangled key)
    const mangled = `${secret.toLowerCase()}x`
    const fromEnv = await loadDecryptOptions({env: {MOCTL_BR_IDENTITY: mangled}}).catch((error: Error) => error)
    expect((fromEnv as Error).message).toContain('MOCTL_BR_IDENTITY')
    expect((fromEnv as Error).message.toLowerCase()).not.toContain(secret.slice(16).toLowerCase())
    // a passphrase-like value in MOCTL_BR_IDENTITY that is not a path
    const phrase = 'correct horse battery staple'
    const phraseError = await loadDecryptOptions({env: {MOCTL_BR_IDENTITY: phrase}}).catch((error: Error) => error)
    expect((phraseError as Error).message).not.toContain(phrase)
    expect((phraseError as Error).message).toContain('MOCTL_BR_IDENTITY')
    // a signing secret passed as a trusted signer
    const sig = 'BRSIG-SECRET-KEY-1' + 'A'.repeat(64)
    const asSigner = await loadTrustedSigners({env: {}, trustedSigners: [sig]}).catch((error: Error) => error)
    expect((asSigner as Error).message).not.toContain('A'.repeat(64))
  })

  it('a key file lands in a new directory of mode 0700 and is 0600, never over an existing file', async () => {
    const dir = join(tmp.path, 'fresh', 'deeper')
    const keys = await generateKeyPair(join(dir, 'w'), join(dir, 'r'))
    expect((await stat(dir)).mode & 0o777).toBe(0o700)
    expect((await stat(keys.writerKey)).mode & 0o777).toBe(0o600)
    expect((await stat(keys.readerKey)).mode & 0o777).toBe(0o600)
    const before = await readFile(keys.readerKey, 'utf8')
    await expect(generateKeyPair(join(dir, 'w3'), keys.readerKey)).rejects.toThrow('already exists')
    expect(await readFile(keys.readerKey, 'utf8')).toBe(before)
    await expect(stat(join(dir, 'w3'))).rejects.toThrow()
  })
})

describe('key files are read with care', () => {
  it('a FIFO or a directory given as a key file is refused at once, never waited on', async () => {
    const {execFileSync} = await import('node:child_process')
    const fifo = join(tmp.path, 'fifo.key')
    execFileSync('mkfifo', [fifo])
    await expect(loadDecryptOptions({env: {}, identityFiles: [fifo]})).rejects.toThrow(/is a FIFO, not a regular file/)
    await expect(loadEncryptOptions({env: {}, writerKeyFile: tmp.path})).rejects.toThrow(/is a directory/)
    await expect(loadDecryptOptions({env: {}, passphraseFile: fifo})).rejects.toThrow(/is a FIFO/)
  })

  it('MOCTL_BR_WRITER_KEY gives way to a key chosen on the command line', async () => {
    const keys = await generateKeyPair(join(tmp.path, 'w4'), join(tmp.path, 'r4'))
    const file = join(tmp.path, 'pass4')
    // not a short word: a secret read from a file is registered for redaction in this process,
    // which the other unit files share (isolate: false), and would hide it in their output
    await writeFile(file, 'pw-of-the-writer-key-test\n')
    const env = {MOCTL_BR_WRITER_KEY: keys.writerKey}
    expect((await loadEncryptOptions({env})).signing?.signer).toBe(keys.signer)
    expect(await loadEncryptOptions({env, passphraseFile: file})).toEqual({
      encrypt: {passphrase: 'pw-of-the-writer-key-test', type: 'passphrase'},
      signing: null,
    })
  })
})
