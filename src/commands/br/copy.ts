import {Args, Flags} from '@oclif/core'
import {resolve} from 'node:path'

import {BrCommand} from '../../base-command.js'
import {lockFlags, quietFlag} from '../../flags.js'
import {BrError, ExitCode, usageError} from '../../lib/errors.js'
import {copyBackups, type CopyResult} from '../../lib/repo/copy.js'

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
--wait-lock), none of --from. This is the local → offsite step of a 3-2-1 policy.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> latest --from /backups/mo --to /mnt/offsite/mo',
    '<%= config.bin %> <%= command.id %> --all --from /backups/mo --to /mnt/offsite/mo --quiet',
    '<%= config.bin %> <%= command.id %> 0193… --from /backups/mo --to /mnt/offsite/mo --json',
  ]
  static override flags = {
    ...lockFlags,
    ...quietFlag,
    all: Flags.boolean({description: 'copy every backup of --from that --to lacks'}),
    from: Flags.string({description: 'the repository to copy from: a local directory', required: true}),
    to: Flags.string({
      description: 'the repository to copy into: a local directory (created if it does not exist)',
      required: true,
    }),
  }

  async run(): Promise<CopyResult> {
    const {args, flags} = await this.parse(Copy)
    if (Boolean(args.id) === flags.all) {
      throw usageError(
        flags.all ? 'give either a backup id or --all, not both' : 'no backup named',
        'pass a backup id (or latest), or --all for every backup --to lacks',
      )
    }

    const copy = {
      all: flags.all,
      from: resolve(flags.from),
      ids: args.id ? [args.id] : [],
      onWarning: (message: string) => this.warn(message),
      to: resolve(flags.to),
      waitLockSeconds: flags['wait-lock'],
    }
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
            title: `Copy backups from ${copy.from} to ${copy.to}`,
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
