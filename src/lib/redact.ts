/**
 * What must never be shown or passed on, in one place: the environment variables that carry our
 * secrets, and the helpers that keep their values (and any other secret this process learned)
 * out of child processes, error messages, warnings, progress lines and debug logs.
 *
 * Guarantees: `childEnv` drops every SECRET_ENV name, whatever the caller passes; `redact` replaces
 * every registered secret value, every value of a SECRET_ENV variable in this process's
 * environment, and anything shaped like an age secret key with `***`; `redactCommand` also hides
 * the password-shaped arguments of a shell command line (`-pSECRET`, `--password=…`,
 * `--password …`, `PASSWORD=…`, `MYSQL_PWD=…`, `user:pass@` in a URL), so a stop command such as
 * `mysqladmin -pSECRET shutdown` can be named in a message without its password.
 * Not: a guarantee about what a child prints of its own accord (its output is redacted of the
 * values we know, not of secrets we were never told), nor about other plugins of a host CLI, which
 * run in this process and can read its environment.
 */

import {inspect} from 'node:util'

/**
 * Environment variables that hold secrets: never inherited by a child process (stop and start
 * commands, mo_ctl, systemctl), never printed. The age identity and the passphrase decrypt
 * backups, the writer key signs them, MO_PASSWORD logs into the service, the AWS ones reach the
 * bucket of an S3 repository.
 */
export const SECRET_ENV = [
  'MOCTL_BR_IDENTITY',
  'MOCTL_BR_PASSPHRASE',
  'MOCTL_BR_WRITER_KEY',
  'MO_PASSWORD',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
] as const

export const REDACTED = '***'

/** Secret values this process learned from files or flags (a password file, `--password`). */
const registered = new Set<string>()

/** Remembers a secret value so that `redact` hides it from then on; empty values are ignored. */
export function registerSecret(value: string | undefined): void {
  if (value) registered.add(value)
}

/** A copy of `env` without the secret variables: what a child process may see. */
export function childEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const copy = {...env}
  for (const name of SECRET_ENV) delete copy[name]
  return copy
}

/** age identities and the writer key's signing secret (secrets.ts, signing.ts) */
const AGE_SECRET_KEY = /(?:AGE-SECRET-KEY-1|BRSIG-SECRET-KEY-1)[0-9A-Z]+/gi

/**
 * `text` with every secret value we know replaced by ***. A short secret is replaced wherever it
 * occurs, even inside other words: a garbled log line is the price of never printing it.
 */
export function redact(text: string, env: NodeJS.ProcessEnv = process.env): string {
  const values = new Set<string>()
  const add = (value: string | undefined) => {
    if (!value) return
    values.add(value)
    // As a debug line shows it inside a string: escaped by util.inspect or JSON.
    values.add(inspect(value).slice(1, -1))
    values.add(JSON.stringify(value).slice(1, -1))
    // A value read from a file may be printed without its final newline.
    if (value.trim()) values.add(value.trim())
  }

  for (const value of registered) add(value)
  for (const name of SECRET_ENV) add(env[name])
  // Longest first: a secret that contains another must go whole.
  let out = text.replaceAll(AGE_SECRET_KEY, REDACTED)
  for (const value of [...values].sort((a, b) => b.length - a.length)) {
    if (value) out = out.replaceAll(value, REDACTED)
  }

  return out
}

/** Arguments of a command line that carry a secret: group 1 is kept, group 2 is the secret. */
const COMMAND_SECRETS: RegExp[] = [
  // mysql, mysqladmin, mariadb: -pSECRET (the value glued to -p; a bare -p prompts)
  /((?:^|[\s'"])-p)([^\s'"]+)/g,
  // --password=SECRET, --password SECRET, --passwd, --pass, --passphrase, --secret, --token…
  /(--(?:password|passwd|pass|passphrase|secret[_-]access[_-]key|secret|token|api-key|access-key|secret-key)(?:=|\s+))('[^']*'|"[^"]*"|\S+)/gi,
  // PASSWORD=…, MYSQL_PWD=…, AWS_SECRET_ACCESS_KEY=…, FOO_TOKEN=… (an environment assignment)
  /(\b\w*(?:PASSWORD|PASSWD|PWD|SECRET|TOKEN|PASSPHRASE|ACCESS_KEY|PRIVATE_KEY)\w*=)('[^']*'|"[^"]*"|\S+)/gi,
  // scheme://user:SECRET@host
  /(:\/\/[^\s/:@]+:)([^\s@]+)(?=@)/g,
]

/** A shell command line fit to print: password-shaped arguments and known secrets hidden. */
export function redactCommand(command: string, env: NodeJS.ProcessEnv = process.env): string {
  let out = command
  for (const pattern of COMMAND_SECRETS) out = out.replace(pattern, (_match, keep: string) => `${keep}${REDACTED}`)
  return redact(out, env)
}
