/**
 * The settings file of `moctl br config set|get|unset|list`, as mo_ctl keeps set_conf/get_conf:
 * `config.json` in the CLI's config directory. Its values are defaults for the flags of the same
 * name (the repository, the data directory, how to stop and start the service, the keys).
 *
 * Guarantees: only the keys of CONFIG_KEYS, each value checked when set and again when read (a
 * hand-edited file with a bad value or an unknown key is reported, naming the file, never used or
 * silently dropped); paths are stored absolute, so a value means the same from any directory; the
 * file is replaced atomically (temp file, fsync, rename) with mode 0600 in a 0700 directory; a
 * file or directory that someone else could have written is refused, as ssh refuses such a
 * ~/.ssh/config (checkTrusted).
 * Not: a place for secrets. It takes no passwords and no private keys, only the path of an
 * identity file or of a password file, and public recipients. A stop-cmd or start-cmd is kept as
 * given: one that carries a password (`mysqladmin -pSECRET`) is stored in this 0600 file, and is
 * printed with the password hidden everywhere but `config get` and `config list`. Precedence is the caller's: base-command.ts applies the
 * values as flag defaults, so flags and environment variables win over the file.
 */
import {randomBytes} from 'node:crypto'
import {constants} from 'node:fs'
import {mkdir, open, rename, rm, stat} from 'node:fs/promises'
import {dirname, join, resolve} from 'node:path'

import {BrError, usageError} from './errors.js'
import {SERVICE_KINDS} from './service/types.js'
import {SIGNER_RE} from './signing.js'

interface KeySpec {
  description: string
  /**
   * integer: a whole number within min..max; list: comma-separated; path: stored absolute (an
   * s3:// location as given); command: a path if it holds a '/'; boolean: true or false
   */
  kind: 'boolean' | 'command' | 'integer' | 'list' | 'path' | 'string'
  max?: number
  min?: number
  options?: readonly string[]
  /**
   * The file's value is not used when one of these is given, even though its own flag is not:
   * they choose another way to do the same thing (a passphrase instead of the file's recipient).
   */
  yieldsTo?: {env?: string[]; flags?: string[]}
}

/** The known keys; each is also the name of the flag it gives a default to. */
export const CONFIG_KEYS = {
  'access-key-id': {
    description: 'S3 access key id (its secret in secret-access-key-file, or AWS_SECRET_ACCESS_KEY)',
    kind: 'string',
    yieldsTo: {flags: ['profile']},
  },
  'data-dir': {description: 'the data directory to back up (mo-data)', kind: 'path'},
  endpoint: {description: 'http(s)://host[:port] of an S3-compatible store (MinIO, OSS, COS, Ceph)', kind: 'string'},
  'force-path-style': {
    description: 'S3 path-style addressing (MinIO and most on-premises stores): true or false',
    kind: 'boolean',
  },
  host: {description: 'SQL host of the service', kind: 'string'},
  identity: {
    description: 'age identity file that decrypts the backups',
    kind: 'path',
    yieldsTo: {env: ['MOCTL_BR_IDENTITY']},
  },
  'mo-ctl': {description: 'the mo_ctl script, for --service mo_ctl', kind: 'command'},
  'password-file': {
    description: 'file holding the SQL password on one line (the file takes no password itself)',
    kind: 'path',
    yieldsTo: {env: ['MO_PASSWORD'], flags: ['password']},
  },
  path: {description: 'the repository: a directory or s3://BUCKET/PREFIX', kind: 'path'},
  port: {description: 'SQL port of the service', kind: 'integer', max: 65_535, min: 1},
  profile: {
    description: 'AWS shared config profile for S3 credentials',
    kind: 'string',
    yieldsTo: {flags: ['access-key-id', 'secret-access-key-file', 'secret-access-key']},
  },
  recipient: {
    description: 'age public key(s) backups are encrypted to, comma-separated',
    kind: 'list',
    yieldsTo: {
      env: ['MOCTL_BR_RECIPIENT', 'MOCTL_BR_PASSPHRASE', 'MOCTL_BR_WRITER_KEY'],
      flags: ['recipients-file', 'passphrase-file', 'no-encrypt', 'writer-key'],
    },
  },
  region: {description: 'region of the S3 bucket', kind: 'string'},
  'role-arn': {description: "a role to assume for S3 with the chain's credentials", kind: 'string'},
  'secret-access-key-file': {
    description: 'file holding the S3 secret access key on one line (the file takes no key itself)',
    kind: 'path',
    yieldsTo: {flags: ['secret-access-key', 'profile']},
  },
  service: {description: 'how to stop and start the service', kind: 'string', options: SERVICE_KINDS},
  'sql-timeout': {description: 'seconds to wait for the service to answer SQL', kind: 'integer', min: 1},
  'start-cmd': {description: 'shell command that starts the service, for --service command', kind: 'string'},
  'stop-cmd': {description: 'shell command that stops the service, for --service command', kind: 'string'},
  'trusted-signer': {
    description: 'writers (brsig1…) whose backups verify and restore accept, comma-separated',
    kind: 'list',
    yieldsTo: {env: ['MOCTL_BR_TRUSTED_SIGNER']},
  },
  unit: {description: 'the systemd unit, for --service systemd', kind: 'string'},
  user: {description: 'SQL user', kind: 'string'},
  'writer-key': {
    description: 'writer key file that encrypts and signs backups (and lets prune trust what it signed)',
    kind: 'path',
    yieldsTo: {
      env: ['MOCTL_BR_WRITER_KEY', 'MOCTL_BR_PASSPHRASE', 'MOCTL_BR_RECIPIENT'],
      flags: ['recipient', 'recipients-file', 'passphrase-file', 'no-encrypt'],
    },
  },
} as const satisfies Record<string, KeySpec>

export type ConfigKey = keyof typeof CONFIG_KEYS
export type ConfigValues = Partial<Record<ConfigKey, number | string>>

const KEYS = Object.keys(CONFIG_KEYS) as ConfigKey[]
const spec = (key: ConfigKey): KeySpec => CONFIG_KEYS[key]

/** One line per key, for help texts: `  port         SQL port of the service`. */
export function describeKeys(): string {
  const width = Math.max(...KEYS.map((k) => k.length))
  return KEYS.map((k) => `  ${k.padEnd(width)}  ${spec(k).description}`).join('\n')
}

export interface ConfigEntry {
  file: string
  key: ConfigKey
  value: number | string
}

export const CONFIG_FILE = 'config.json'
export const configFile = (configDir: string): string => join(configDir, CONFIG_FILE)

export function isConfigKey(key: string): key is ConfigKey {
  return Object.hasOwn(CONFIG_KEYS, key)
}

/** The key, or a usage error listing the valid ones. */
export function parseConfigKey(key: string): ConfigKey {
  if (isConfigKey(key)) return key
  if (/^(password|passphrase|identity-key|secret|secret[_-]access[_-]key)$/i.test(key)) {
    throw usageError(
      `the config file takes no secrets: ${key} cannot be set`,
      key.toLowerCase() === 'password'
        ? 'write the password in a file (mode 0600) and set password-file to its path, or use MO_PASSWORD'
        : /access/i.test(key)
          ? 'write the secret key in a file (mode 0600) and set secret-access-key-file to its path, or use AWS_SECRET_ACCESS_KEY'
          : 'keep the secret in a file (mode 0600) and pass the file with its flag',
    )
  }

  throw usageError(`unknown config key ${key}`, `valid keys: ${KEYS.join(', ')}`)
}

/** The value to store for a key: checked, paths made absolute, integers as numbers. */
export function parseConfigValue(key: ConfigKey, raw: string, cwd = process.cwd()): number | string {
  const {kind, max, min, options} = spec(key) as KeySpec
  const value = raw.trim()
  if (value === '') throw usageError(`config ${key} cannot be empty`, `to remove it: moctl br config unset ${key}`)
  if (/AGE-SECRET-KEY-/i.test(value)) {
    throw usageError(
      `config ${key} looks like a private key: the config file takes no secrets`,
      'store the key in a file (mode 0600) and set identity to its path',
    )
  }

  switch (kind) {
    case 'boolean': {
      if (/^(true|yes|1|on)$/i.test(value)) return 'true'
      if (/^(false|no|0|off)$/i.test(value)) return 'false'
      throw usageError(`config ${key} must be true or false, not ${value}`)
    }

    case 'command': {
      return value.includes('/') ? resolve(cwd, value) : value
    }

    case 'integer': {
      return parseInteger(key, value, min ?? 0, max)
    }

    case 'list': {
      return parseList(key, value)
    }

    case 'path': {
      // A repository in S3 is a location, not a path relative to where the command ran.
      return key === 'path' && /^s3:\/\//i.test(value) ? value : resolve(cwd, value)
    }

    case 'string': {
      if (options && !options.includes(value)) {
        throw usageError(`config ${key} must be one of ${options.join(', ')}, not ${value}`)
      }

      return value
    }
  }
}

/** A comma- or space-separated list of public keys: age recipients, or writers' signers. */
function parseList(key: ConfigKey, value: string): string {
  const items = splitList(value)
  const [shape, what] =
    key === 'trusted-signer' ? [SIGNER_RE, 'a signer (brsig1…)'] : [/^age1[0-9a-z]+$/, 'an age public key (age1…)']
  const bad = items.find((item) => !shape.test(item))
  if (bad !== undefined)
    throw usageError(`config ${key}: ${bad.length > 80 || /secret/i.test(bad) ? 'a value' : bad} is not ${what}`)
  return items.join(',')
}

function parseInteger(key: ConfigKey, value: string, min: number, max?: number): number {
  const n = Number(value)
  if (/^\d+$/.test(value) && n >= min && n <= (max ?? Number.MAX_SAFE_INTEGER)) return n
  throw usageError(
    `config ${key} must be a whole number ${max === undefined ? `of at least ${min}` : `from ${min} to ${max}`}, not ${value}`,
  )
}

/** The flag default a stored value stands for: lists (and multiple-value flags) as arrays. */
export function flagDefault(
  key: ConfigKey,
  value: number | string,
  multiple: boolean,
): boolean | number | string | string[] {
  if (spec(key).kind === 'list') return splitList(String(value))
  if (spec(key).kind === 'boolean') return value === 'true'
  return multiple ? [String(value)] : value
}

/** Whether the file's value gives way to an environment variable or flag that chooses otherwise. */
export function yieldsTo(key: ConfigKey): {env: string[]; flags: string[]} {
  const {yieldsTo: y} = spec(key)
  return {env: y?.env ?? [], flags: y?.flags ?? []}
}

/**
 * The file's values; {} when there is no file. Damaged files, unknown keys and bad values are usage
 * errors naming the file; so is a file, or a config directory, that someone else could have
 * written (see checkTrusted).
 */
export async function readConfig(file: string): Promise<ConfigValues> {
  let handle
  try {
    // O_NONBLOCK: a FIFO put in its place must be refused, not waited on for ever.
    // eslint-disable-next-line no-bitwise -- open(2) flags are a bit set
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {}
    throw new BrError('usage', `cannot read config file ${file}: ${(error as Error).message}`, {cause: error})
  }

  let text: string
  try {
    const stats = await handle.stat()
    if (!stats.isFile()) throw usageError(`config file ${file} is not a regular file`, `remove it: rm ${file}`)
    checkTrusted(file, stats, 'config file')
    checkTrusted(dirname(file), await stat(dirname(file)), 'config directory')
    if (stats.size > MAX_CONFIG_BYTES) {
      throw usageError(`config file ${file} is ${stats.size} bytes: not a config file`, `remove it: rm ${file}`)
    }

    text = await handle.readFile('utf8')
  } finally {
    await handle.close()
  }

  let data: unknown
  try {
    data = JSON.parse(text)
  } catch {
    data = undefined
  }

  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw usageError(
      `config file ${file} is damaged (not a JSON object)`,
      `fix it, or remove it and set the values again`,
    )
  }

  const values: ConfigValues = {}
  for (const [key, value] of Object.entries(data)) {
    if (!isConfigKey(key))
      throw usageError(`config file ${file} has an unknown key ${key}`, `valid keys: ${KEYS.join(', ')}`)
    try {
      if (typeof value !== 'string' && typeof value !== 'number') throw usageError(`config ${key} must be a string`)
      values[key] = parseConfigValue(key, String(value), dirname(file))
    } catch (error) {
      throw usageError(
        `config file ${file}: ${(error as Error).message}`,
        `fix it with: moctl br config set ${key} VALUE`,
      )
    }
  }

  return values
}

/** Sets one key; returns the value as stored. */
export async function setConfig(file: string, key: ConfigKey, raw: string): Promise<number | string> {
  const value = parseConfigValue(key, raw)
  await writeConfig(file, {...(await readConfig(file)), [key]: value})
  return value
}

/** Removes one key; false when it was not set. */
export async function unsetConfig(file: string, key: ConfigKey): Promise<boolean> {
  const values = await readConfig(file)
  if (!(key in values)) return false
  delete values[key]
  await writeConfig(file, values)
  return true
}

async function writeConfig(file: string, values: ConfigValues): Promise<void> {
  await mkdir(dirname(file), {mode: 0o700, recursive: true})
  checkTrusted(dirname(file), await stat(dirname(file)), 'config directory')
  const sorted = Object.fromEntries(KEYS.filter((k) => k in values).map((k) => [k, values[k]]))
  const temp = `${file}.tmp-${randomBytes(6).toString('hex')}`
  const handle = await open(temp, 'wx', 0o600)
  try {
    await handle.writeFile(JSON.stringify(sorted, null, 2) + '\n')
    await handle.sync()
    await handle.close()
    await rename(temp, file)
  } catch (error) {
    await handle.close().catch(() => {})
    await rm(temp, {force: true})
    throw error
  }
}

/** Far more than the dozen keys can take: past this it is not our file. */
const MAX_CONFIG_BYTES = 64 * 1024

/**
 * As ssh treats ~/.ssh/config: the file and its directory must belong to the user running the
 * command (or to root) and must not be writable by group or others. Whoever can write the file
 * chooses the commands that stop and start the service (stop-cmd, start-cmd, mo-ctl), run as this
 * user, and the recipients future backups are encrypted to: any of these is refused, whatever the
 * file holds today. A sticky directory (like /tmp) is fine: others cannot replace our entries.
 */
export function checkTrusted(
  path: string,
  stats: {isDirectory(): boolean; mode: number; uid: number},
  what: 'config directory' | 'config file',
  uid: number | undefined = process.getuid?.(),
): void {
  if (uid === undefined) return // no POSIX owners (Windows)
  if (stats.uid !== uid && stats.uid !== 0) {
    throw usageError(
      `${what} ${path} is owned by uid ${stats.uid}, not by you (uid ${uid}) or root: refusing to use it, its owner could make this command run their commands`,
      `if you trust its content: chown ${uid} ${path}`,
    )
  }

  /* eslint-disable no-bitwise -- permission bits */
  const sticky = stats.isDirectory() && (stats.mode & 0o1000) !== 0
  const writable = (stats.mode & 0o022) !== 0
  const who = (stats.mode & 0o002) === 0 ? 'its group' : 'other users'
  const mode = (stats.mode & 0o7777).toString(8).padStart(4, '0')
  /* eslint-enable no-bitwise */
  if (writable && !sticky) {
    throw usageError(
      `${what} ${path} can be written by ${who} (mode ${mode}): refusing to use it, they could make this command run their commands`,
      `chmod go-w ${path}`,
    )
  }
}

const splitList = (value: string) =>
  value
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean)
