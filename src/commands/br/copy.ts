import {Args, Flags} from '@oclif/core'

import {BrCommand} from '../../base-command.js'
import {lockFlags, objectLockFlags, quietFlag, s3Flags} from '../../flags.js'
import {BrError, ExitCode, isBrError, usageError} from '../../lib/errors.js'
import {isS3Location, type RepoAddress} from '../../lib/repo/address.js'
import {checkDistinct, copyBackups, type CopyResult} from '../../lib/repo/copy.js'
import {type S3FlagValues} from '../../repo-address.js'

/** The S3 flags but mo_br's --bucket/--filepath: copy names both repositories as locations. */
const copyS3Flags = Object.fromEntries(
  Object.entries(s3Flags).filter(([name]) => name !== 'bucket' && name !== 'filepath'),
) as Omit<typeof s3Flags, 'bucket' | 'filepath'>

export default class Copy extends BrCommand {
  static override args = {
    id: Args.string({
      description: 'backup id, a unique prefix of one, or latest (the newest backup in --from)',
    }),
  }
  static override description = `Copy backups from one repository to another, without decrypting them.

Copies the backup and every backup of its chain that --to lacks (oldest first); --all copies \
every backup of --from that --to lacks. The stored objects are streamed as they are (no key is \
needed) and each one's SHA-256 and size are checked against its record on the way; the record \
is copied byte for byte and written last, so its signature still holds and a copy that fails or \
is interrupted leaves nothing listed in --to (the next copy completes it). A backup already in \
--to is skipped; one under the same id with another record is refused (exit 3). --to is created \
if it does not exist. Takes the writer lock of --to (exit 4 while another writer holds it, unless \
--wait-lock), none of --from. This is the local → offsite step of a 3-2-1 policy.

Either side may be s3://BUCKET/PREFIX: the S3 flags (--endpoint, --region, --force-path-style, \
credentials) apply to whichever side is in S3 (to both when both are, which must then share them). \
With --object-lock-days the objects the copy writes into an S3 --to are kept under Object Lock \
retention: the host that copies can add backups there but cannot delete or overwrite them.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> latest --from /backups/mo --to /mnt/offsite/mo',
    '<%= config.bin %> <%= command.id %> --all --from /backups/mo --to /mnt/offsite/mo --quiet',
    '<%= config.bin %> <%= command.id %> 0193… --from /backups/mo --to /mnt/offsite/mo --json',
    '<%= config.bin %> <%= command.id %> --all --from /backups/mo --to s3://backups/mo --endpoint https://minio.example:9000 --force-path-style --object-lock-days 30',
  ]
  static override flags = {
    ...lockFlags,
    ...quietFlag,
    ...copyS3Flags,
    ...objectLockFlags,
    all: Flags.boolean({description: 'copy every backup of --from that --to lacks'}),
    from: Flags.string({
      description: 'the repository to copy from: a local directory or s3://BUCKET/PREFIX',
      required: true,
    }),
    to: Flags.string({
      description:
        'the repository to copy into: a local directory or s3://BUCKET/PREFIX (created if it does not exist)',
      required: true,
    }),
  }

  async run(): Promise<CopyResult> {
    const {args, flags} = await this.parse(Copy)
    if (Boolean(args.id) === Boolean(flags.all)) {
      throw usageError(
        flags.all ? 'give either a backup id or --all, not both' : 'no backup named',
        'pass a backup id (or latest), or --all for every backup --to lacks',
      )
    }

    const copy = {
      all: flags.all,
      ...(await this.addresses(flags)),
      ids: args.id ? [args.id] : [],
      onWarning: (message: string) => this.warn(message),
      waitLockSeconds: flags['wait-lock'],
    }
    // A usage error is said alone, before the task tree starts.
    await checkDistinct(copy.from, copy.to)
    const ctx: {result?: CopyResult} = {}
    await this.runFlow(
      {
        steps: [
          {
            async run(c, report, signal) {
              c.result = await copyBackups({
                ...copy,
                onOutput: (line) => report.output(line),
                onProgress: (p) => report.progress(p),
                signal,
              })
            },
            title: `Copy backups from ${copy.from.location} to ${copy.to.location}`,
          },
        ],
      },
      ctx,
    )
    const result = ctx.result!
    if (!this.jsonEnabled()) process.stdout.write(describe(result))
    if (result.failed.length > 0) {
      const message = `${result.failed.length} backup${result.failed.length > 1 ? 's' : ''} of ${result.from} could not be copied: ${result.failed.map((f) => f.id).join(', ')}`
      // --json: the result says which, and the exit code that some failed.
      if (this.jsonEnabled()) process.exitCode = ExitCode.integrity
      else throw new BrError('integrity', message)
    }

    return result
  }

  /**
   * --from and --to as RepoAddresses: the S3 flags go to the side (or sides) in S3, the Object
   * Lock flags to --to only. S3 flags with two local directories, or Object Lock for a local
   * --to, are refused (exit 2) naming what to change.
   */
  private async addresses(flags: S3FlagValues & {from: string; to: string}) {
    const {from, to} = flags
    const lock = ['object-lock-days', 'object-lock-mode'] as const
    const lockGiven = lock.find((name) => flags[name] !== undefined)
    if (lockGiven && !isS3Location(to)) {
      throw usageError(
        `--${lockGiven} is for an S3 --to, but --to ${to} is a local directory`,
        'give --to as s3://BUCKET/PREFIX in a bucket with Object Lock enabled, or drop the Object Lock flags',
      )
    }

    const forSource = {...flags, 'object-lock-days': undefined, 'object-lock-mode': undefined}
    const address = async (
      flag: 'from' | 'to',
      location: string,
      other: string,
      values: S3FlagValues,
    ): Promise<RepoAddress> => {
      if (isS3Location(location)) return this.repoAddress(values, location, flag)
      if (isS3Location(other)) return this.repoAddress({}, location, flag)
      // Both local: S3 flags given here are a mistake (the config file's are dropped by repoAddress).
      try {
        return await this.repoAddress(values, location, flag)
      } catch (error) {
        if (!isBrError(error) || !error.message.includes('for an S3 repository')) throw error
        throw usageError(
          error.message.replace(/, but --(?:from|to) .*$/, ', but --from and --to are local directories'),
          'give --from or --to as s3://BUCKET/PREFIX, or drop the S3 flags',
        )
      }
    }

    return {from: await address('from', from, to, forSource), to: await address('to', to, from, flags)}
  }
}

/** One line per backup on stdout: what was copied, skipped, or could not be. */
function describe(result: CopyResult): string {
  const lines = [
    ...result.copied.map((c) => `copied ${c.id} (${c.type})`),
    ...result.skipped.map((id) => `skipped ${id} (already in ${result.to})`),
    ...result.failed.map((f) => `failed ${f.id}: ${f.reason}`),
  ]
  return lines.length > 0 ? `${lines.join('\n')}\n` : `nothing to copy: ${result.from} has no complete backup\n`
}
