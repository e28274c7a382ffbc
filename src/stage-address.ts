/**
 * Where MatrixOne's `BACKUP … S3OPTION` writes for `br backup --mode online --stage
 * s3://BUCKET/PREFIX`: the stage's S3 settings, from its own `--stage-*` flags, or else the S3
 * repository's, checked once in run(), before BACKUP is sent.
 *
 * Who reads what: mo-service writes the stage with its own S3 client, from the keys in the
 * statement; this CLI reads the stage back and deletes it. So the stage needs credentials MO can
 * use: a static key pair (--stage-access-key-id with --stage-secret-access-key-file, the S3
 * repository's static key when no --stage-* flag is given, or AWS_ACCESS_KEY_ID and
 * AWS_SECRET_ACCESS_KEY), or --stage-role-arn (MO assumes the role). A --profile or instance role
 * of this host means nothing to mo-service, and is refused.
 *
 * Guarantees: every inconsistent input is a usage error (exit 2) naming the flag: --stage-* without
 * --stage, --stage without --mode online or with --online-dir, a stage that is not
 * s3://BUCKET/PREFIX, no credentials MO could use. The secret key is registered with redact.ts,
 * so nothing prints it (the statement that carries it is shown with ***).
 * Not: a check that the bucket exists or that MO can reach the endpoint (MO's refusal says so).
 */
import {usageError} from './lib/errors.js'
import {registerSecret} from './lib/redact.js'
import {isS3Location, type RepoAddress, type S3Settings} from './lib/repo/address.js'
import {repoAddress, type S3FlagValues} from './repo-address.js'

export interface StageFlagValues {
  mode?: string
  'online-dir'?: string
  stage?: string
  'stage-access-key-id'?: string
  'stage-endpoint'?: string
  'stage-force-path-style'?: boolean
  'stage-region'?: string
  'stage-role-arn'?: string
  'stage-secret-access-key-file'?: string
}

const OWN_FLAGS = [
  'stage-access-key-id',
  'stage-endpoint',
  'stage-force-path-style',
  'stage-region',
  'stage-role-arn',
  'stage-secret-access-key-file',
] as const

/** The stage's address, or undefined without --stage. `repo` lends its settings when no --stage-* flag is given. */
export async function stageAddress(
  flags: StageFlagValues,
  repo: RepoAddress,
  env: NodeJS.ProcessEnv = process.env,
): Promise<undefined | {location: string; s3: S3Settings}> {
  const own = OWN_FLAGS.filter((name) => flags[name] !== undefined && flags[name] !== false)
  if (flags.stage === undefined) {
    if (own.length > 0) throw usageError(`--${own[0]} needs --stage`, 'pass --stage s3://BUCKET/PREFIX, or drop it')
    return undefined
  }

  if (flags.mode !== 'online') {
    throw usageError('--stage is for online backups', 'pass --mode online: MatrixOne writes its BACKUP into the stage')
  }

  if (flags['online-dir'] !== undefined) {
    throw usageError(
      '--stage and --online-dir both say where MO writes',
      'drop one: --stage for S3, --online-dir for a folder on the MO host',
    )
  }

  if (!isS3Location(flags.stage)) {
    throw usageError(
      `--stage ${flags.stage} is not an S3 location`,
      'write it as s3://BUCKET/PREFIX: MatrixOne writes its BACKUP there, and br streams it into the repository',
    )
  }

  const address = await repoAddress(flags.stage, own.length > 0 || !repo.s3 ? ownFlags(flags) : {}, env, 'stage')
  const s3 = address.s3 as S3Settings
  if (own.length === 0 && repo.s3) {
    const {credentials, endpoint, forcePathStyle, region, roleArn} = repo.s3
    Object.assign(s3, {credentials, endpoint, forcePathStyle, region, roleArn})
    for (const key of ['credentials', 'endpoint', 'region', 'roleArn'] as const)
      if (s3[key] === undefined) delete s3[key]
  }

  if (!s3.credentials && !s3.roleArn) {
    if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
      s3.credentials = {accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY}
    } else {
      throw usageError(
        `--stage ${address.location} has no credentials MatrixOne can use: mo-service writes it with its own S3 client`,
        'pass --stage-access-key-id with --stage-secret-access-key-file (or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or --stage-role-arn',
      )
    }
  }

  registerSecret(s3.credentials?.secretAccessKey)
  return {location: address.location, s3}
}

/** The --stage-* flags under the names repoAddress reads. */
function ownFlags(flags: StageFlagValues): S3FlagValues {
  return {
    'access-key-id': flags['stage-access-key-id'],
    endpoint: flags['stage-endpoint'],
    'force-path-style': flags['stage-force-path-style'],
    region: flags['stage-region'],
    'role-arn': flags['stage-role-arn'],
    'secret-access-key-file': flags['stage-secret-access-key-file'],
  }
}
