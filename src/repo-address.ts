/**
 * Turns what the commands were given (--path, and the S3 flags of flags.ts with their mo_br
 * aliases) into the RepoAddress the library takes (lib/repo/address.ts): once per repository, in
 * run(), before anything is opened, locked or stopped.
 *
 * Guarantees: every inconsistent or malformed input is a usage error (exit 2) naming the flag and
 * the fix: S3 flags with a local --path, --backup_dir s3 without --bucket, a malformed
 * s3://BUCKET/PREFIX, an endpoint that is not http(s)://host[:port], --object-lock-days without an
 * S3 repository or below 1, an unreadable or empty secret file, an access key id without its
 * secret. No message prints a secret, nor a location or endpoint that may hold one (a URL with
 * user:password@); the secret key read from a file or given on the command line is registered
 * with lib/redact.ts, so nothing prints it afterwards. A local path comes back resolve()d.
 * Not: a check that the bucket exists or that the credentials work (the backend says that when
 * it connects), nor the AWS credential chain itself (env, shared files, --profile, roles): the
 * SDK resolves it when the backend first needs it, so no command loads the SDK here.
 */
import {resolve} from 'node:path'

import {usageError} from './lib/errors.js'
import {registerSecret} from './lib/redact.js'
import {isS3Location, parseS3Location, type RepoAddress, type S3Settings} from './lib/repo/address.js'
import {readSecretLine} from './lib/secret-file.js'

/** The values of the S3 flags (flags.ts s3Flags, objectLockFlags, --backup-dir/--restore-dir) after parsing. */
export interface S3FlagValues {
  'access-key-id'?: string
  /** --backup-dir (mo_br's --backup_dir): filesystem or s3 */
  'backup-dir'?: string
  bucket?: string
  endpoint?: string
  filepath?: string
  'force-path-style'?: boolean
  'object-lock-days'?: number
  'object-lock-mode'?: string
  profile?: string
  region?: string
  /** --restore-dir (mo_br's --restore_dir): filesystem or s3 */
  'restore-dir'?: string
  'role-arn'?: string
  /** mo_br's --secret_access_key: on the command line (the command warns); prefer the file or AWS_SECRET_ACCESS_KEY */
  'secret-access-key'?: string
  'secret-access-key-file'?: string
}

/** The flags that only mean something for an S3 repository, as the user types them. */
export const S3_ONLY_FLAGS = [
  'access-key-id',
  'bucket',
  'endpoint',
  'filepath',
  'force-path-style',
  'object-lock-days',
  'object-lock-mode',
  'profile',
  'region',
  'role-arn',
  'secret-access-key',
  'secret-access-key-file',
] as const satisfies ReadonlyArray<keyof S3FlagValues>

/** S3 Object Lock allows retention of up to 100 years. */
const MAX_LOCK_DAYS = 36_500
/** What S3, MinIO, OSS and COS accept as bucket names, loosely: 3-63 letters, digits, dots, hyphens, underscores. */
const BUCKET = /^[\w.-]{3,63}$/

/**
 * The repository `location` (--path, or undefined when only --bucket names it) and the S3 flags
 * as one RepoAddress; `flag` is the flag that gave the location, as messages name it (copy's
 * --from and --to). `env` gives AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY when a static key
 * is half given by flags; otherwise the environment is left to the SDK's credential chain.
 */
export async function repoAddress(
  location: string | undefined,
  flags: S3FlagValues,
  env: NodeJS.ProcessEnv = process.env,
  flag = 'path',
): Promise<RepoAddress> {
  const where = s3Url(location, flags, flag)
  if (where.local !== undefined) return {location: resolve(where.local)}
  const {url} = where
  const parsed = parseS3Location(url)
  if (!parsed || !BUCKET.test(parsed.bucket)) {
    throw usageError(
      `${flags.bucket === undefined ? `--${flag} ${shown(url)}` : `--bucket ${shown(flags.bucket)}`} is not a valid S3 location`,
      'write it as s3://BUCKET/PREFIX: a bucket name of 3-63 letters, digits, dots and hyphens, then an optional key prefix without . or .. parts',
    )
  }

  const settings: S3Settings = {
    bucket: parsed.bucket,
    forcePathStyle: flags['force-path-style'] === true,
    prefix: parsed.prefix,
  }
  Object.assign(settings, optionalSettings(flags))
  const credentials = staticCredentials(flags, env)
  if (credentials) settings.credentials = credentials
  const objectLock = objectLockOf(flags)
  if (objectLock) settings.objectLock = objectLock
  return {location: `s3://${parsed.bucket}/${parsed.prefix.replace(/\/$/, '')}`.replace(/\/$/, ''), s3: settings}
}

/**
 * Which repository the flags name: a local directory (with no S3 flag), or an s3:// URL from
 * --path or from mo_br's --bucket and --filepath.
 */
function s3Url(
  location: string | undefined,
  flags: S3FlagValues,
  flag: string,
): {local: string; url?: never} | {local?: never; url: string} {
  const s3Kind = flags['backup-dir'] === 's3' || flags['restore-dir'] === 's3'
  const needsBucket = () =>
    usageError(
      `${flags['backup-dir'] === 's3' ? '--backup_dir s3' : '--restore_dir s3'} needs --bucket`,
      'pass --bucket BUCKET (and --filepath PREFIX), or --path s3://BUCKET/PREFIX',
    )
  if (flags.filepath !== undefined && flags.bucket === undefined) {
    throw usageError('--filepath needs --bucket', 'pass --bucket BUCKET with --filepath, or --path s3://BUCKET/PREFIX')
  }

  const hasLocation = location !== undefined && location !== ''
  if (flags.bucket !== undefined) {
    if (hasLocation) {
      throw usageError(
        '--bucket and --path both name the repository',
        'pass either --path s3://BUCKET/PREFIX, or --bucket BUCKET with --filepath PREFIX',
      )
    }

    return {url: `s3://${flags.bucket}/${flags.filepath ?? ''}`}
  }

  if (!hasLocation) {
    if (s3Kind) throw needsBucket()
    throw usageError('missing --path: the repository', 'pass --path DIR or --path s3://BUCKET/PREFIX')
  }

  if (isS3Location(location)) return {url: location}
  if (s3Kind) throw needsBucket()
  const given = S3_ONLY_FLAGS.filter((name) => flags[name] !== undefined && flags[name] !== false)
  if (given.length > 0) {
    throw usageError(
      `${given.map((name) => `--${name}`).join(', ')} ${given.length === 1 ? 'is' : 'are'} for an S3 repository, but --${flag} ${shown(location)} is a local directory`,
      `pass --${flag} s3://BUCKET/PREFIX for an S3 repository, or drop the S3 flags`,
    )
  }

  return {local: location}
}

/**
 * --access-key-id with its secret: --secret-access-key-file, mo_br's --secret-access-key, or
 * AWS_SECRET_ACCESS_KEY; a secret file without a key id takes AWS_ACCESS_KEY_ID. Neither flag:
 * undefined, and the SDK's chain finds the credentials (env, --profile, instance roles).
 */
function staticCredentials(flags: S3FlagValues, env: NodeJS.ProcessEnv): S3Settings['credentials'] {
  const file = flags['secret-access-key-file']
  const onCommandLine = flags['secret-access-key']
  if (file !== undefined && onCommandLine !== undefined) {
    throw usageError(
      '--secret-access-key-file and --secret-access-key both give the secret key',
      'drop --secret-access-key: the file keeps the secret out of `ps`',
    )
  }

  if (flags['access-key-id'] === undefined && file === undefined && onCommandLine === undefined) return undefined
  if (flags.profile !== undefined) {
    throw usageError(
      '--profile and a static key (--access-key-id, --secret-access-key-file) both choose the credentials',
      'drop one: --profile reads the key from ~/.aws/credentials',
    )
  }

  let secretAccessKey: string | undefined
  if (file !== undefined) secretAccessKey = readSecretLine(file, '--secret-access-key-file')
  else if (onCommandLine === undefined) secretAccessKey = env.AWS_SECRET_ACCESS_KEY
  else {
    if (onCommandLine.trim() === '')
      throw usageError('--secret-access-key is empty', 'pass the secret key in --secret-access-key-file FILE')
    secretAccessKey = onCommandLine
    registerSecret(onCommandLine)
  }

  const accessKeyId = flags['access-key-id'] ?? env.AWS_ACCESS_KEY_ID
  if (!secretAccessKey) {
    throw usageError(
      '--access-key-id needs its secret key',
      'pass --secret-access-key-file FILE (mode 0600), or set AWS_SECRET_ACCESS_KEY',
    )
  }

  if (!accessKeyId || accessKeyId.trim() === '') {
    throw usageError(
      `${file === undefined ? '--secret-access-key' : '--secret-access-key-file'} needs the access key id it belongs to`,
      'pass --access-key-id ID, or set AWS_ACCESS_KEY_ID',
    )
  }

  return {accessKeyId: accessKeyId.trim(), secretAccessKey}
}

/** --endpoint, --region, --profile, --role-arn: each checked, only those given. */
function optionalSettings(flags: S3FlagValues): Partial<S3Settings> {
  const out: Partial<S3Settings> = {}
  if (flags.endpoint !== undefined) out.endpoint = checkEndpoint(flags.endpoint)
  if (flags.region !== undefined) out.region = checkWord(flags.region, '--region', 'a region name such as us-east-1')
  if (flags.profile !== undefined)
    out.profile = checkWord(flags.profile, '--profile', 'a profile name of ~/.aws/config')
  if (flags['role-arn'] !== undefined)
    out.roleArn = checkWord(flags['role-arn'], '--role-arn', 'a role ARN such as arn:aws:iam::123456789012:role/backup')
  return out
}

function objectLockOf(flags: S3FlagValues): S3Settings['objectLock'] {
  const days = flags['object-lock-days']
  const mode = flags['object-lock-mode']
  if (days === undefined) {
    if (mode !== undefined) throw usageError('--object-lock-mode needs --object-lock-days', 'pass --object-lock-days N')
    return undefined
  }

  if (!Number.isInteger(days) || days < 1 || days > MAX_LOCK_DAYS) {
    throw usageError(
      `--object-lock-days must be a whole number of days from 1 to ${MAX_LOCK_DAYS}, not ${days}`,
      'pass the number of days each object of a backup stays undeletable, e.g. --object-lock-days 30',
    )
  }

  const upper = (mode ?? 'compliance').toUpperCase()
  if (upper !== 'COMPLIANCE' && upper !== 'GOVERNANCE') {
    throw usageError(`--object-lock-mode must be compliance or governance, not ${shown(mode!)}`)
  }

  return {days, mode: upper}
}

/**
 * http(s)://host[:port], as S3 SDKs take it. A bare host[:port] (as mo_br scripts often give it,
 * e.g. cos.ap-guangzhou.myqcloud.com) means https. Returned without a final '/'.
 */
export function checkEndpoint(raw: string): string {
  const value = raw.trim()
  const withScheme = /^[a-z][\w+.-]*:\/\//i.test(value) ? value : `https://${value}`
  let url: undefined | URL
  try {
    url = new URL(withScheme)
  } catch {
    url = undefined
  }

  const fix =
    'write it as http(s)://HOST[:PORT], e.g. --endpoint https://s3.example.com or --endpoint http://127.0.0.1:9000'
  // Credentials in the URL would reach messages and `ps`: refused without printing it.
  if (url && (url.username || url.password)) {
    throw usageError(
      '--endpoint holds credentials (user:password@)',
      `${fix}; give the keys with --access-key-id and --secret-access-key-file`,
    )
  }

  if (
    !url ||
    (url.protocol !== 'http:' && url.protocol !== 'https:') ||
    url.hostname === '' ||
    (url.pathname !== '/' && url.pathname !== '') ||
    url.search !== '' ||
    url.hash !== '' ||
    /\s/.test(value)
  ) {
    throw usageError(`--endpoint ${shown(value)} is not an http(s)://host[:port] URL`, fix)
  }

  return `${url.protocol}//${url.host}`
}

function checkWord(value: string, flag: string, what: string): string {
  const v = value.trim()
  if (v === '' || /[\s\p{Cc}]/u.test(v) || v.length > 2048) {
    throw usageError(`${flag} ${shown(value)} is not ${what}`, `pass ${flag} with ${what}`)
  }

  return v
}

/** A value fit for a message: anything that may carry a credential (user:pass@, very long) is not printed. */
function shown(value: string): string {
  return value.includes('@') || value.length > 200 || /\p{Cc}/u.test(value) ? '(the value given)' : value
}
