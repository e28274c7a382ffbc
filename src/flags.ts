/**
 * Flags shared by several br commands. mo_br's snake_case names are aliases, so scripts written
 * for mo_br keep working (--backup_dir, --path, --restore_path, --parallelism).
 */
import {Flags} from '@oclif/core'

import {SERVICE_KINDS} from './lib/service/types.js'

/**
 * Flags a command cannot do without, which `br config set` may give: not `required` for oclif
 * (its help would say "(required)", and it would refuse before the config is read), but checked
 * after parsing, in one place (BrCommand.parse), with one message naming the three ways to give it.
 */
type StandIn = (flags: Record<string, unknown>) => boolean
const configRequired = new WeakMap<object, StandIn>()

/**
 * `unless`: true when other flags name the same thing another way (mo_br's --backup_dir s3 and
 * --bucket for --path): then it is not missing, and the command checks those flags itself.
 */
export function requiredUnlessConfig<F extends object>(flag: F, unless: StandIn = () => false): F {
  configRequired.set(flag, unless)
  return flag
}

export const isRequiredUnlessConfig = (flag: object): boolean => configRequired.has(flag)
/** Whether other flags stand in for a requiredUnlessConfig flag. */
export const standsIn = (flag: object, flags: Record<string, unknown>): boolean =>
  configRequired.get(flag)?.(flags) ?? false

export const repoFlags = {
  'backup-dir': Flags.string({
    aliases: ['backup_dir'],
    default: 'filesystem',
    description:
      "kind of repository (mo_br's --backup_dir): filesystem (--path DIR) or s3 (--bucket and --filepath, or --path s3://BUCKET/PREFIX)",
    options: ['filesystem', 's3'],
  }),
  path: requiredUnlessConfig(
    Flags.string({
      aliases: ['repo'],
      description:
        'the repository: a local directory or s3://BUCKET/PREFIX (required unless --bucket, or `br config set path`; also --repo)',
      env: 'MOCTL_BR_REPO',
    }),
    (f) => f.bucket !== undefined || f['backup-dir'] === 's3' || f['restore-dir'] === 's3',
  ),
}

/** mo_br's --restore_dir: where the backup is read from, a filesystem path or s3 (with --bucket). */
export const restoreDirFlag = {
  'restore-dir': Flags.string({
    aliases: ['restore_dir'],
    default: 'filesystem',
    description:
      "kind of repository to restore from (mo_br's --restore_dir): filesystem (--path DIR) or s3 (--bucket and --filepath, or --path s3://BUCKET/PREFIX)",
    options: ['filesystem', 's3'],
  }),
}

/**
 * How to reach a repository in an S3-compatible store (AWS S3, MinIO, OSS, COS, Ceph), with
 * mo_br's names as aliases. Credentials come from the AWS chain (env, shared files with
 * --profile, roles) unless --access-key-id is given; the secret key is read from a file, never
 * taken from the command line by default. Checked and assembled by repo-address.ts.
 */
export const s3Flags = {
  'access-key-id': Flags.string({
    aliases: ['access_key_id'],
    description:
      'S3 access key id (with --secret-access-key-file or AWS_SECRET_ACCESS_KEY); default: the AWS credential chain',
    helpGroup: 'S3',
  }),
  bucket: Flags.string({
    description:
      "the bucket of an S3 repository (mo_br's --bucket, with --filepath): the same as --path s3://BUCKET/FILEPATH",
    helpGroup: 'S3',
  }),
  endpoint: Flags.string({
    description: 'http(s)://host[:port] of a non-AWS store (MinIO, OSS, COS, Ceph); default: AWS S3 for --region',
    helpGroup: 'S3',
  }),
  filepath: Flags.string({
    description: "the key prefix under --bucket (mo_br's --filepath)",
    helpGroup: 'S3',
  }),
  'force-path-style': Flags.boolean({
    aliases: ['is_minio'],
    description:
      "path-style addressing (http://host/bucket/key), which MinIO and most on-premises stores need (mo_br's --is_minio)",
    helpGroup: 'S3',
  }),
  profile: Flags.string({
    description: 'profile of the AWS shared config and credentials files (~/.aws/config, ~/.aws/credentials)',
    helpGroup: 'S3',
  }),
  region: Flags.string({
    description: 'region of the bucket (default: AWS_REGION, the profile, else us-east-1)',
    helpGroup: 'S3',
  }),
  'role-arn': Flags.string({
    aliases: ['role_arn'],
    description: "a role to assume with the chain's credentials (mo_br's --role_arn)",
    helpGroup: 'S3',
  }),
  'secret-access-key': Flags.string({
    aliases: ['secret_access_key'],
    description:
      "mo_br's --secret_access_key: on the command line every user sees it in `ps`: prefer --secret-access-key-file or AWS_SECRET_ACCESS_KEY",
    helpGroup: 'S3',
    hidden: true,
  }),
  'secret-access-key-file': Flags.string({
    description: 'file holding the S3 secret access key on one line (mode 0600), for --access-key-id',
    helpGroup: 'S3',
  }),
}

/**
 * `br backup --mode online --stage s3://BUCKET/PREFIX`: MO's BACKUP writes into S3, not a folder of
 * its host. The stage's settings default to the S3 repository's when none of these is given
 * (stage-address.ts).
 */
export const stageFlags = {
  stage: Flags.string({
    description:
      "online: MO's BACKUP writes into a fresh prefix under s3://BUCKET/PREFIX (BACKUP … S3OPTION), streamed from there into the repository and deleted; for a cluster whose data lives in S3, or br away from the MO host",
    helpGroup: 'STAGE',
  }),
  'stage-access-key-id': Flags.string({
    description:
      "access key id MO writes the stage with (with --stage-secret-access-key-file); default: the S3 repository's, or AWS_ACCESS_KEY_ID",
    helpGroup: 'STAGE',
  }),
  'stage-endpoint': Flags.string({
    description: "http(s)://host[:port] of the stage's store, as both mo-service and this host reach it",
    helpGroup: 'STAGE',
  }),
  'stage-force-path-style': Flags.boolean({
    description: "path-style addressing for the stage (MO's is_minio)",
    helpGroup: 'STAGE',
  }),
  'stage-region': Flags.string({description: 'region of the stage bucket', helpGroup: 'STAGE'}),
  'stage-role-arn': Flags.string({
    description: "a role MO assumes to write the stage, instead of a static key (MO's role_arn)",
    helpGroup: 'STAGE',
  }),
  'stage-secret-access-key-file': Flags.string({
    description: 'file holding the secret key of --stage-access-key-id (mode 0600)',
    helpGroup: 'STAGE',
  }),
}

/** S3 Object Lock on what a backup (or copy) writes: a host that can write cannot delete or overwrite it. */
export const objectLockFlags = {
  'object-lock-days': Flags.integer({
    description:
      'S3 only: keep every object of the backup under Object Lock retention for N days (the bucket must have Object Lock enabled)',
    helpGroup: 'S3',
  }),
  'object-lock-mode': Flags.string({
    description:
      'compliance (nobody can shorten it, not even the root account) or governance (a user with s3:BypassGovernanceRetention can); default compliance',
    helpGroup: 'S3',
    options: ['compliance', 'governance'],
  }),
}

/** For commands that show progress on stderr. */
export const quietFlag = {
  quiet: Flags.boolean({
    char: 'q',
    description: 'no progress on stderr (warnings and errors are still printed)',
  }),
}

export const lockFlags = {
  'wait-lock': Flags.integer({
    default: 0,
    description:
      'seconds to wait for another writer (backup, delete, prune) to release the repository; 0 fails at once (exit 4)',
    min: 0,
  }),
}

/** The public keys of the writers whose backups are accepted. */
export const trustedSignerFlag = {
  'trusted-signer': Flags.string({
    description:
      'accept only backups signed by this writer (brsig1…, repeatable; env MOCTL_BR_TRUSTED_SIGNER, comma-separated)',
    multiple: true,
  }),
}

export const decryptFlags = {
  'allow-unencrypted': Flags.boolean({
    description:
      'accept a backup stored unencrypted although keys were given (refused by default: anyone who can write the repository could have put it there)',
  }),
  'allow-unsigned': Flags.boolean({
    description:
      'accept backups that are not signed although trusted signers were given (backups taken before --writer-key)',
  }),
  identity: Flags.string({
    char: 'i',
    description:
      'reader key or age identity file (AGE-SECRET-KEY-1…) that can decrypt the backup; its brsig1… lines are trusted signers (env MOCTL_BR_IDENTITY: a file, or the key itself)',
    multiple: true,
  }),
  'passphrase-file': Flags.string({
    description: 'file holding the passphrase the backup was encrypted with (env MOCTL_BR_PASSPHRASE: the passphrase)',
  }),
  ...trustedSignerFlag,
}

/** The backup host's key: encrypts to its recipient and signs (env MOCTL_BR_WRITER_KEY: a file, or the key itself). */
export const writerKeyFlag = {
  'writer-key': Flags.string({
    description:
      'writer key file from `key generate --writer-key`: encrypts to its recipient and signs the backup (env MOCTL_BR_WRITER_KEY)',
  }),
}

export const serviceFlags = {
  host: Flags.string({
    default: '127.0.0.1',
    description: 'SQL host of the service, for the readiness check',
    helpGroup: 'SERVICE',
  }),
  'mo-ctl': Flags.string({
    default: 'mo_ctl',
    description: 'the mo_ctl script, for --service mo_ctl',
    helpGroup: 'SERVICE',
  }),
  password: Flags.string({
    description: 'SQL password; on the command line every user sees it in `ps`: prefer --password-file or MO_PASSWORD',
    env: 'MO_PASSWORD',
    helpGroup: 'SERVICE',
  }),
  'password-file': Flags.string({
    // Not `exclusive: ['password']`: oclif would refuse MO_PASSWORD with it, and print its value.
    description: 'file holding the SQL password on one line (mode 0600); wins over MO_PASSWORD',
    helpGroup: 'SERVICE',
  }),
  port: Flags.integer({
    default: 6001,
    description: 'SQL port of the service',
    helpGroup: 'SERVICE',
    max: 65_535,
    min: 1,
  }),
  service: Flags.string({
    default: 'none',
    description:
      'how to stop and start the service: mo_ctl, systemd (--unit), command (--stop-cmd/--start-cmd), or none (it must already be stopped)',
    helpGroup: 'SERVICE',
    options: [...SERVICE_KINDS],
  }),
  'sql-timeout': Flags.integer({
    default: 120,
    description: 'seconds to wait for the service to answer SQL after a start',
    helpGroup: 'SERVICE',
    min: 1,
  }),
  'start-cmd': Flags.string({
    description: 'shell command that starts the service and returns once it is launching (e.g. "mo_ctl start")',
    helpGroup: 'SERVICE',
    relationships: [{flags: [{name: 'service', when: async (f) => f.service === 'command'}], type: 'all'}],
  }),
  'stop-cmd': Flags.string({
    description: 'shell command that stops the service and returns once it has stopped (e.g. "mo_ctl stop")',
    helpGroup: 'SERVICE',
    relationships: [{flags: [{name: 'service', when: async (f) => f.service === 'command'}], type: 'all'}],
  }),
  unit: Flags.string({
    default: 'matrixone',
    description: 'the systemd unit, for --service systemd',
    helpGroup: 'SERVICE',
  }),
  user: Flags.string({default: 'root', description: 'SQL user', helpGroup: 'SERVICE'}),
}
