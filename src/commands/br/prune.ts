import {Flags} from '@oclif/core'

import {BrCommand} from '../../base-command.js'
import {lockFlags, repoFlags, s3Flags, trustedSignerFlag, writerKeyFlag} from '../../flags.js'
import {describeCleanup} from '../../lib/cleanup.js'
import {pruneRepository, type PruneResult} from '../../lib/repo/maintenance.js'

export default class Prune extends BrCommand {
  static override description = `Remove the backups a retention policy does not keep.

Keeps the newest --keep-last backups, the newest backup of each of the last --keep-daily days \
and --keep-weekly ISO weeks, and every backup a kept one depends on (its full base and the \
incrementals between). Also removes leftovers of crashed backups (objects without a record, an \
S3 store's incomplete multipart uploads) once older than --incomplete-older-than, and what \
killed backups and restores left beside the data directories this host backed up (see br cleanup). \
A backup its store still retains (S3 Object Lock) is not an error: it is kept whole, with every \
backup it needs, and reported as "kept until DATE (object lock)"; the others are pruned.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> --path /backups/mo --keep-last 3 --keep-daily 7 --keep-weekly 4',
    '<%= config.bin %> <%= command.id %> --path /backups/mo --keep-last 1 --dry-run --json',
  ]
  static override flags = {
    ...repoFlags,
    ...s3Flags,
    ...lockFlags,
    ...trustedSignerFlag,
    ...writerKeyFlag,
    'dry-run': Flags.boolean({description: 'show what would be removed, remove nothing'}),
    'incomplete-older-than': Flags.integer({
      default: 60,
      description:
        'minutes after which the leftovers of a crashed backup are removed (0: at once, when you know no backup is running)',
      min: 0,
    }),
    'keep-daily': Flags.integer({description: 'keep the newest backup of each of the last N days', min: 0}),
    'keep-last': Flags.integer({description: 'keep the newest N backups', min: 0}),
    'keep-weekly': Flags.integer({description: 'keep the newest backup of each of the last N weeks', min: 0}),
  }

  async run(): Promise<PruneResult> {
    const {flags} = await this.parse(Prune)
    const repo = await this.repoAddress(flags)
    const result = await pruneRepository(
      repo,
      {keepDaily: flags['keep-daily'], keepLast: flags['keep-last'], keepWeekly: flags['keep-weekly']},
      {
        ...(await this.writerOptions(flags)),
        dryRun: flags['dry-run'],
        incompleteOlderThanMs: flags['incomplete-older-than'] * 60_000,
      },
    )
    if (!this.jsonEnabled()) {
      const verb = result.dryRun ? 'would remove' : 'removed'
      const lines = [
        ...result.removed.map((id) => `${verb} ${id}`),
        ...result.incompleteRemoved.map((id) => `${verb} ${id} (incomplete)`),
        ...result.kept.map((k) => `kept ${k.id} (${k.reasons.join(', ')})`),
        ...result.retained.map(
          (r) =>
            `kept ${r.id}${r.incomplete ? ' (incomplete)' : ''} until ${r.until ?? 'its retention ends'} (object lock)`,
        ),
        ...result.leftovers.flatMap((l) => describeCleanup(l)),
        ...result.lockTempFiles.map((file) => `${verb} ${file} (left by a run killed while writing its lock)`),
      ]
      process.stdout.write(lines.length > 0 ? `${lines.join('\n')}\n` : 'nothing to prune\n')
    }

    return result
  }
}
