/**
 * Key files, written with mode 0600 (their directory created 0700 if missing) and never over an
 * existing file: losing a key loses every backup made for it.
 *
 * - the writer key, for the backup host: the age recipient (public) and an Ed25519 signing
 *   secret. It encrypts and signs new backups; it cannot read any backup.
 * - the reader key, for the disaster-recovery vault: the age identity and the signer's public
 *   key. It reads backups and tells ours from forgeries; it cannot sign.
 * - a plain age identity (`--output`), as age-keygen writes it: encrypts and reads, signs nothing.
 *
 * Comment lines say what each file is for, so a file found on a disk explains itself.
 */
import {mkdir, open, rm} from 'node:fs/promises'
import {dirname, resolve} from 'node:path'

import {generateIdentity} from './archive/age.js'
import {usageError} from './errors.js'
import {generateSigningKey} from './signing.js'

export async function generateKeyFile(file: string): Promise<{identityFile: string; recipient: string}> {
  const path = resolve(file)
  const {identity, recipient} = await generateIdentity()
  await writeNewKeyFile(path, `# created: ${new Date().toISOString()}\n# public key: ${recipient}\n${identity}\n`)
  return {identityFile: path, recipient}
}

export interface KeyPairFiles {
  readerKey: string
  recipient: string
  signer: string
  writerKey: string
}

/** A writer key and its reader key: both are written, or neither. */
export async function generateKeyPair(writerFile: string, readerFile: string): Promise<KeyPairFiles> {
  const writerKey = resolve(writerFile)
  const readerKey = resolve(readerFile)
  if (writerKey === readerKey)
    throw usageError('--writer-key and --reader-key name the same file', 'give two different files')
  const {identity, recipient} = await generateIdentity()
  const {secret, signer} = generateSigningKey()
  const created = new Date().toISOString()
  await writeNewKeyFile(
    readerKey,
    [
      '# moctl br reader key: decrypts backups and accepts only those signed by the signer below.',
      '# Keep it offline (the disaster-recovery vault), never on the backup host.',
      `# created: ${created}`,
      `# public key: ${recipient}`,
      identity,
      signer,
      '',
    ].join('\n'),
  )
  try {
    await writeNewKeyFile(
      writerKey,
      [
        '# moctl br writer key: encrypts backups to the recipient below and signs them.',
        '# Keep it on the backup host; it cannot read any backup.',
        `# created: ${created}`,
        `# signer: ${signer}`,
        recipient,
        secret,
        '',
      ].join('\n'),
    )
  } catch (error) {
    await rm(readerKey, {force: true})
    throw error
  }

  return {readerKey, recipient, signer, writerKey}
}

async function writeNewKeyFile(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), {mode: 0o700, recursive: true}).catch((error: NodeJS.ErrnoException) => {
    throw usageError(
      `cannot create the directory of ${path}: ${error.code ?? error.message}`,
      'choose a writable location for the key file',
    )
  })
  let handle
  try {
    handle = await open(path, 'wx', 0o600)
  } catch (error) {
    const {code} = error as NodeJS.ErrnoException
    if (code === 'EEXIST')
      throw usageError(
        `${path} already exists: refusing to overwrite a key`,
        'choose another file, or move the old key away first',
      )
    throw usageError(`cannot write ${path}: ${code ?? (error as Error).message}`, 'choose a writable location')
  }

  try {
    await handle.writeFile(text)
    await handle.sync()
  } finally {
    await handle.close()
  }
}
