import {Flags} from '@oclif/core'
import {resolve} from 'node:path'

import {BrCommand} from '../../base-command.js'
import {s3Flags} from '../../flags.js'
import {
  cleanupDataDir,
  cleanupRepositoryLeftovers,
  type CleanupResult,
  describeCleanup,
  removeStaleLockTempFiles,
} from '../../lib/cleanup.js'
import {openRepository} from '../../lib/repo/repository.js'

export default class Cleanup extends BrCommand {
  static override description = `Remove what killed backups and restores left beside a data directory.

Finds restore staging directories (.<data-dir>.restore-<id>-…) and --clone copies \
(.<data-dir>.clone-<id>, beside the data dir or in --clone-dir) whose run is dead, and removes them. \
Takes the data directory's lock first, so a running backup or restore is never touched (exit 4). \
Says what a dead run left: a service it stopped (with the command that starts it), a restore that \
died mid-swap (undone when it died between its two renames; otherwise where the old data is). \
The previous data a restore kept (<data-dir>.before-<id>) is never removed: it is listed. \
With --path: every data directory this host backed up into that repository, and the temp files \
of lock writes killed midway at its root (once older than 30 minutes).`
  static override examples = [
    '<%= config.bin %> <%= command.id %> --data-dir /opt/matrixone/mo-data',
    '<%= config.bin %> <%= command.id %> --data-dir /opt/matrixone/mo-data --clone-dir /scratch --dry-run',
    '<%= config.bin %> <%= command.id %> --path /backups/mo --json',
  ]
  static override flags = {
    'clone-dir': Flags.string({
      dependsOn: ['data-dir'],
      description: 'also look for --clone copies here (where backup --clone-dir put them)',
    }),
    'data-dir': Flags.string({
      aliases: ['data_dir'],
      atLeastOne: ['data-dir', 'path', 'bucket'],
      description: 'the data directory whose leftovers to remove: mo-data itself',
    }),
    'dry-run': Flags.boolean({description: 'show what would be removed or put back, change nothing'}),
    path: Flags.string({
      aliases: ['repo'],
      description:
        'a repository (a directory or s3://BUCKET/PREFIX): clean every data directory this host backed up into it',
    }),
    ...s3Flags,
  }

  async run(): Promise<CleanupResult[]> {
    const {flags} = await this.parse(Cleanup)
    const dryRun = flags['dry-run']
    const results: CleanupResult[] = []
    const lockTempFiles: string[] = []
    if (flags['data-dir']) {
      const cloneDir = flags['clone-dir'] ? resolve(flags['clone-dir']) : undefined
      results.push(await cleanupDataDir(resolve(flags['data-dir']), {cloneDir, dryRun}))
    }

    if (flags.path || flags.bucket) {
      const repo = await openRepository(await this.repoAddress(flags))
      const done = new Set(results.map((r) => r.dataDir))
      for (const result of await cleanupRepositoryLeftovers(repo, {dryRun})) {
        if (!done.has(result.dataDir)) results.push(result)
      }

      lockTempFiles.push(...(await removeStaleLockTempFiles(repo, {dryRun})))
    }

    if (!this.jsonEnabled()) {
      const verb = dryRun ? 'would remove' : 'removed'
      const lines = [
        ...results.flatMap((r) => describeCleanup(r)),
        ...lockTempFiles.map((file) => `${verb} ${file} (left by a run killed while writing its lock)`),
      ]
      process.stdout.write(lines.length > 0 ? `${lines.join('\n')}\n` : 'nothing to clean up\n')
    }

    return results
  }
}
