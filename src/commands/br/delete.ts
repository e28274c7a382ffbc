import {Args, Flags} from '@oclif/core'

import {BrCommand} from '../../base-command.js'
import {lockFlags, repoFlags, s3Flags, trustedSignerFlag, writerKeyFlag} from '../../flags.js'
import {deleteBackups, type DeleteResult} from '../../lib/repo/maintenance.js'

export default class Delete extends BrCommand {
  static override args = {
    id: Args.string({
      description: 'backup id, a unique prefix of one, or latest (the newest backup in the repository)',
      required: true,
    }),
  }
  static override description = `Delete a backup from the repository.

Refuses when other backups are incrementals on top of it, unless --cascade, which deletes those \
too (newest first). Each backup's record goes first, so an interrupted delete never leaves a \
backup that is listed but cannot be restored. --dry-run names what would go. A backup its store \
still retains (S3 Object Lock) cannot be deleted before its retention ends: exit 1, nothing deleted.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> 0193… --path /backups/mo',
    '<%= config.bin %> <%= command.id %> 0193… --path /backups/mo --cascade --dry-run',
  ]
  static override flags = {
    ...repoFlags,
    ...s3Flags,
    ...lockFlags,
    ...trustedSignerFlag,
    ...writerKeyFlag,
    cascade: Flags.boolean({description: 'also delete the backups that depend on this one'}),
    'dry-run': Flags.boolean({description: 'show what would be deleted, delete nothing'}),
  }

  async run(): Promise<DeleteResult> {
    const {args, flags} = await this.parse(Delete)
    const repo = await this.repoAddress(flags)
    const result = await deleteBackups(repo, args.id, {
      ...(await this.writerOptions(flags)),
      cascade: flags.cascade,
      dryRun: flags['dry-run'],
      // Each one as it goes, on stdout only: an interrupted delete has said what it removed.
      onRemoved: (id) => {
        if (!this.jsonEnabled()) process.stdout.write(`deleted ${id}\n`)
      },
    })
    if (result.dryRun && !this.jsonEnabled())
      process.stdout.write(result.removed.map((id) => `would delete ${id}\n`).join(''))

    return result
  }
}
