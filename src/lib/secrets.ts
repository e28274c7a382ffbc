/**
 * Where keys and passphrases come from: files named by flags, or the environment. Never the
 * command line itself (it shows in `ps` and shell history), except public recipient keys.
 *
 * Guarantees: every problem names the file or variable and says what it should hold; identity
 * files may hold several keys and comments, as age-keygen writes them. It does not check that a
 * key fits a backup: decryption says that (exit 3).
 */
import {readFile} from 'node:fs/promises'

import type {DecryptOptions, EncryptOptions} from './archive/types.js'

import {BrError, usageError} from './errors.js'

export interface SecretSources {
  env: NodeJS.ProcessEnv
  identityFiles?: string[]
  noEncrypt?: boolean
  passphraseFile?: string
  recipients?: string[]
  recipientsFiles?: string[]
}

const IDENTITY = /^AGE-SECRET-KEY-1[0-9A-Z]+$/
const RECIPIENT = /^age1[0-9a-z]+$/

export async function loadDecryptOptions(src: SecretSources): Promise<DecryptOptions> {
  const identities: string[] = []
  const identityTexts = await Promise.all((src.identityFiles ?? []).map((file) => readSecretFile(file, '--identity')))
  for (const [i, text] of identityTexts.entries()) identities.push(...parseIdentities(text, src.identityFiles![i]))
  const envIdentity = src.env.MOCTL_BR_IDENTITY
  if (identities.length === 0 && envIdentity) {
    identities.push(
      ...(IDENTITY.test(envIdentity.trim())
        ? [envIdentity.trim()]
        : parseIdentities(await readSecretFile(envIdentity, 'MOCTL_BR_IDENTITY'), envIdentity)),
    )
  }

  const passphrases: string[] = []
  if (src.passphraseFile) passphrases.push(await readPassphrase(src.passphraseFile))
  else if (src.env.MOCTL_BR_PASSPHRASE) passphrases.push(src.env.MOCTL_BR_PASSPHRASE)
  return {identities, passphrases}
}

export async function loadEncryptOptions(src: SecretSources): Promise<EncryptOptions> {
  const recipients = [...(src.recipients ?? [])]
  const recipientTexts = await Promise.all(
    (src.recipientsFiles ?? []).map((file) => readSecretFile(file, '--recipients-file')),
  )
  for (const [i, text] of recipientTexts.entries()) recipients.push(...parseRecipients(text, src.recipientsFiles![i]))
  if (recipients.length === 0 && !src.passphraseFile && src.env.MOCTL_BR_RECIPIENT) {
    recipients.push(...src.env.MOCTL_BR_RECIPIENT.split(/[\s,]+/).filter(Boolean))
  }

  for (const r of recipients) {
    if (!RECIPIENT.test(r))
      throw usageError(
        `recipient ${r} is not an age public key`,
        'pass the age1… line that `moctl br key generate` printed',
      )
  }

  const passphrase = src.passphraseFile
    ? await readPassphrase(src.passphraseFile)
    : recipients.length === 0
      ? src.env.MOCTL_BR_PASSPHRASE
      : undefined
  if (src.noEncrypt) {
    if (recipients.length > 0 || passphrase)
      throw usageError(
        '--no-encrypt conflicts with the recipients or passphrase given',
        'drop --no-encrypt, or drop the keys',
      )
    return {type: 'none'}
  }

  if (recipients.length > 0 && passphrase) {
    throw usageError(
      'an age archive is encrypted to recipients or to one passphrase, not both',
      'drop --passphrase-file (or MOCTL_BR_PASSPHRASE), or the recipients',
    )
  }

  if (recipients.length > 0) return {recipients, type: 'recipients'}
  if (passphrase) return {passphrase, type: 'passphrase'}
  throw usageError(
    'no encryption key given: backups are encrypted unless --no-encrypt is given',
    'pass --recipient age1… (from `moctl br key generate`), --recipients-file FILE or --passphrase-file FILE',
  )
}

async function readSecretFile(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (error) {
    const {code} = error as NodeJS.ErrnoException
    throw new BrError(
      'usage',
      `cannot read ${what} file ${file}: ${code === 'ENOENT' ? 'no such file' : (code ?? String(error))}`,
      {
        cause: error,
        suggestions: ['check the path; `moctl br key generate --output FILE` makes an identity file'],
      },
    )
  }
}

async function readPassphrase(file: string): Promise<string> {
  // One line, as `echo secret > file` writes it: the final newline is not part of the passphrase.
  const text = (await readSecretFile(file, '--passphrase-file')).replace(/\r?\n$/, '')
  if (text.length === 0) throw usageError(`passphrase file ${file} is empty`, 'write the passphrase on its first line')
  return text
}

function meaningfulLines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
}

function parseIdentities(text: string, file: string): string[] {
  const lines = meaningfulLines(text)
  const bad = lines.find((l) => !IDENTITY.test(l))
  if (lines.length === 0 || bad !== undefined) {
    throw usageError(
      `${file} is not an age identity file`,
      'it must hold AGE-SECRET-KEY-1… lines, as `moctl br key generate` writes them',
    )
  }

  return lines
}

function parseRecipients(text: string, file: string): string[] {
  const lines = meaningfulLines(text)
  if (lines.length === 0)
    throw usageError(`recipients file ${file} holds no age1… key`, 'write one age1… public key a line')
  return lines
}
