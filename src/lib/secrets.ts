/**
 * Where keys, passphrases and signers come from: files named by flags, or the environment.
 * Never the command line itself (it shows in `ps` and shell history), except public keys
 * (age1… recipients, brsig1… signers).
 *
 * Guarantees: every problem names the file, flag or variable and says what it should hold, and
 * no message ever prints a value that may be a secret (a key in the wrong place, an environment
 * variable read as a file name); identity files may hold several keys and comments, as
 * age-keygen writes them, and the reader key's signer lines; a writer key given where a reader
 * key belongs (or the reverse) is named as such. It does not check that a key fits a backup:
 * decryption says that (exit 3).
 */
import type {DecryptOptions, EncryptOptions} from './archive/types.js'

import {usageError} from './errors.js'
import {readSecretLine, readSecretText} from './secret-file.js'
import {isSigner, parseSigner, parseSigningSecret, SIGNING_SECRET_RE, type SigningKey} from './signing.js'

export interface SecretSources {
  env: NodeJS.ProcessEnv
  identityFiles?: string[]
  noEncrypt?: boolean
  passphraseFile?: string
  recipients?: string[]
  recipientsFiles?: string[]
  /** --trusted-signer: brsig1… keys whose backups readers accept */
  trustedSigners?: string[]
  /** --writer-key: the backup host's key file (recipient + signing secret) */
  writerKeyFile?: string
}

/** What a reader holds: keys to decrypt, and the signers it trusts (reader key file, --trusted-signer). */
export interface ReadKeys extends DecryptOptions {
  signers: string[]
}

/** What a writer holds: how to encrypt, and the key that signs (null: backups are not signed). */
export interface WriteKeys {
  encrypt: EncryptOptions
  signing: null | SigningKey
}

const IDENTITY = /^AGE-SECRET-KEY-1[0-9A-Z]+$/
const RECIPIENT = /^age1[0-9a-z]+$/
/** Anything that looks like a private key: never echoed back. */
const SECRETISH = /secret|^age-|^brsig-/i

export async function loadDecryptOptions(src: SecretSources): Promise<ReadKeys> {
  const identities: string[] = []
  // A reader's signers: its own flags and key files; never the writer key (a backup host's variable).
  const signers = flagAndEnvSigners(src)
  const texts = await Promise.all((src.identityFiles ?? []).map((file) => readSecretText(file, '--identity file')))
  for (const [i, text] of texts.entries()) {
    const parsed = parseReaderKey(text, src.identityFiles![i])
    identities.push(...parsed.identities)
    signers.push(...parsed.signers)
  }

  const envIdentity = src.env.MOCTL_BR_IDENTITY
  if (identities.length === 0 && envIdentity) {
    const parsed = looksLikeKeyText(envIdentity)
      ? parseReaderKey(envIdentity, 'MOCTL_BR_IDENTITY')
      : parseReaderKey(readEnvFile(envIdentity, 'MOCTL_BR_IDENTITY'), envSource(envIdentity, 'MOCTL_BR_IDENTITY'))
    identities.push(...parsed.identities)
    signers.push(...parsed.signers)
  }

  const passphrases: string[] = []
  if (src.passphraseFile) passphrases.push(await readPassphrase(src.passphraseFile))
  else if (src.env.MOCTL_BR_PASSPHRASE) passphrases.push(src.env.MOCTL_BR_PASSPHRASE)
  return {identities, passphrases, signers: [...new Set(signers)]}
}

/**
 * The signers a command trusts without reading any secret: --trusted-signer, MOCTL_BR_TRUSTED_SIGNER,
 * and the writer key's own signer (the backup host trusts what it signed itself).
 */
export async function loadTrustedSigners(src: SecretSources): Promise<string[]> {
  const signers = flagAndEnvSigners(src)
  const writer = await loadWriterKey(src)
  if (writer?.signing) signers.push(writer.signing.signer)
  return [...new Set(signers)]
}

/** --trusted-signer, and MOCTL_BR_TRUSTED_SIGNER (comma- or space-separated). */
function flagAndEnvSigners(src: SecretSources): string[] {
  const signers = (src.trustedSigners ?? []).map((s) => parseSigner(s, publicOrHidden(s, '--trusted-signer')))
  const env = src.env.MOCTL_BR_TRUSTED_SIGNER
  if (env) {
    for (const s of env.split(/[\s,]+/).filter(Boolean))
      signers.push(parseSigner(s, publicOrHidden(s, 'MOCTL_BR_TRUSTED_SIGNER')))
  }

  return signers
}

export async function loadEncryptOptions(src: SecretSources): Promise<WriteKeys> {
  const writer = await loadWriterKey(src)
  const recipients = await loadRecipients(src, writer?.recipients ?? [])
  const passphrase = src.passphraseFile
    ? await readPassphrase(src.passphraseFile)
    : recipients.length === 0
      ? src.env.MOCTL_BR_PASSPHRASE
      : undefined
  const signing = writer?.signing ?? null
  if (src.noEncrypt) {
    if (recipients.length > 0 || passphrase)
      throw usageError(
        '--no-encrypt conflicts with the recipients or passphrase given',
        'drop --no-encrypt, or drop the keys',
      )
    return {encrypt: {type: 'none'}, signing}
  }

  if (recipients.length > 0 && passphrase) {
    throw usageError(
      'an age archive is encrypted to recipients or to one passphrase, not both',
      'drop --passphrase-file (or MOCTL_BR_PASSPHRASE), or the recipients and --writer-key',
    )
  }

  if (recipients.length > 0) return {encrypt: {recipients: [...new Set(recipients)], type: 'recipients'}, signing}
  if (passphrase) return {encrypt: {passphrase, type: 'passphrase'}, signing}
  throw usageError(
    'no encryption key given: backups are encrypted unless --no-encrypt is given',
    'pass --writer-key FILE (from `moctl br key generate`), --recipient age1…, --recipients-file FILE or --passphrase-file FILE',
  )
}

/** --recipient, the writer key's, --recipients-file, else MOCTL_BR_RECIPIENT; each checked. */
async function loadRecipients(src: SecretSources, fromWriterKey: string[]): Promise<string[]> {
  const recipients = [...(src.recipients ?? []), ...fromWriterKey]
  const texts = await Promise.all((src.recipientsFiles ?? []).map((file) => readSecretText(file, '--recipients-file')))
  for (const [i, text] of texts.entries()) recipients.push(...parseRecipients(text, src.recipientsFiles![i]))
  if (recipients.length === 0 && !src.passphraseFile && src.env.MOCTL_BR_RECIPIENT) {
    recipients.push(...src.env.MOCTL_BR_RECIPIENT.split(/[\s,]+/).filter(Boolean))
  }

  for (const r of recipients) checkRecipient(r)
  // The shape is not enough: a typo breaks the checksum, and encryption would fail only after the stop.
  // age.js is imported here, not at the top: every command loads this module (base-command.ts),
  // and most, `br list` first, never encrypt (~8 modules of start-up).
  if (recipients.length > 0) await (await import('./archive/age.js')).checkRecipients(recipients)
  return recipients
}

/** --writer-key, else MOCTL_BR_WRITER_KEY (a file, or the key file's text itself) unless another key was chosen. */
async function loadWriterKey(src: SecretSources): Promise<null | {recipients: string[]; signing: SigningKey}> {
  if (src.writerKeyFile)
    return parseWriterKey(await readSecretText(src.writerKeyFile, '--writer-key file'), src.writerKeyFile)
  const env = src.env.MOCTL_BR_WRITER_KEY
  // Flags win over the environment: a key chosen on the command line (or MOCTL_BR_PASSPHRASE) sets it aside.
  const otherKey =
    (src.recipients?.length ?? 0) > 0 ||
    (src.recipientsFiles?.length ?? 0) > 0 ||
    Boolean(src.passphraseFile || src.noEncrypt || src.env.MOCTL_BR_PASSPHRASE)
  if (!env || otherKey) return null
  return looksLikeKeyText(env)
    ? parseWriterKey(env, 'MOCTL_BR_WRITER_KEY')
    : parseWriterKey(readEnvFile(env, 'MOCTL_BR_WRITER_KEY'), envSource(env, 'MOCTL_BR_WRITER_KEY'))
}

function checkRecipient(r: string): void {
  if (RECIPIENT.test(r)) return
  if (SECRETISH.test(r)) {
    throw usageError(
      'a secret key was given as a recipient: recipients are public keys (age1…)',
      'pass the age1… public key instead, and treat that secret key as exposed (shell history, ps) if it was typed on a command line',
    )
  }

  throw usageError(
    `recipient ${publicOrHidden(r, 'value')} is not an age public key`,
    'pass the age1… line that `moctl br key generate` printed',
  )
}

/** A value safe to print: a short public-looking value as itself, anything else not at all. */
function publicOrHidden(value: string, what: string): string {
  const v = value.trim()
  if (SECRETISH.test(v) || v.length > 100 || !/^[\w.:/@+-]+$/.test(v)) return `(the ${what} given)`
  return v
}

/** An environment value that holds key lines rather than a file name (keys have no '/'). */
function looksLikeKeyText(value: string): boolean {
  return (
    value.includes('\n') || IDENTITY.test(value.trim()) || SIGNING_SECRET_RE.test(value.trim()) || SECRETISH.test(value)
  )
}

/** How to name an environment variable's file in a message: its path when it is plainly one. */
function envSource(value: string, variable: string): string {
  return /^(\/|\.\.?\/|~)/.test(value) && !SECRETISH.test(value)
    ? `${value} (from ${variable})`
    : `the file ${variable} names`
}

function readEnvFile(value: string, variable: string): string {
  // The value may be a mistyped secret rather than a path: messages name the variable, not it.
  return readSecretText(value, variable, {shownAs: envSource(value, variable)})
}

async function readPassphrase(file: string): Promise<string> {
  // One line, as `echo secret > file` writes it: the final newline is not part of the passphrase.
  return readSecretLine(file, '--passphrase-file')
}

function meaningfulLines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
}

/** An identity file: AGE-SECRET-KEY-1… lines, and the reader key's brsig1… signer lines. */
function parseReaderKey(text: string, source: string): {identities: string[]; signers: string[]} {
  const lines = meaningfulLines(text)
  if (lines.some((l) => SIGNING_SECRET_RE.test(l))) {
    throw usageError(
      `${source} is a writer key: it encrypts and signs backups but cannot read them`,
      'pass the reader key (`moctl br key generate --reader-key`) or an age identity file',
    )
  }

  const identities = lines.filter((l) => IDENTITY.test(l))
  const signers = lines.filter((l) => isSigner(l))
  if (identities.length === 0 || identities.length + signers.length !== lines.length) {
    throw usageError(
      `${source} is not an age identity file`,
      'it must hold AGE-SECRET-KEY-1… lines (and brsig1… signer lines), as `moctl br key generate` writes them',
    )
  }

  return {identities, signers}
}

/** The writer key: age1… recipient lines and one BRSIG-SECRET-KEY-1… line. */
function parseWriterKey(text: string, source: string): {recipients: string[]; signing: SigningKey} {
  const lines = meaningfulLines(text)
  if (lines.some((l) => IDENTITY.test(l))) {
    throw usageError(
      `${source} holds an age identity: it is a reader key, which must not live on the backup host`,
      'pass the writer key (`moctl br key generate --writer-key`); keep the reader key offline',
    )
  }

  const secrets = lines.filter((l) => SIGNING_SECRET_RE.test(l))
  const recipients = lines.filter((l) => RECIPIENT.test(l))
  if (secrets.length !== 1 || recipients.length === 0 || secrets.length + recipients.length !== lines.length) {
    throw usageError(
      `${source} is not a moctl br writer key`,
      'it must hold age1… recipient lines and one BRSIG-SECRET-KEY-1… line, as `moctl br key generate --writer-key` writes them',
    )
  }

  return {recipients, signing: parseSigningSecret(secrets[0], source)}
}

function parseRecipients(text: string, file: string): string[] {
  const lines = meaningfulLines(text)
  if (lines.length === 0)
    throw usageError(`recipients file ${file} holds no age1… key`, 'write one age1… public key a line')
  return lines
}
