/**
 * A backup taken in process for tests of what comes after one (bases, plans, the manifest cache):
 * backupFlow on real dirs, unencrypted unless told, no service to stop.
 */
import {backupFlow, type BackupOptions, excludeList} from '../../src/lib/backup/backup.js'
import {localRepo, type RepoAddress} from '../../src/lib/repo/address.js'
import {openRepository} from '../../src/lib/repo/repository.js'
import {runFlow} from '../../src/lib/steps.js'

/** `repo`: a local directory, or any RepoAddress (an S3 bucket). */
export function optionsFor(
  dataDir: string,
  repo: RepoAddress | string,
  over: Partial<BackupOptions> = {},
): BackupOptions {
  return {
    checksum: false,
    clone: false,
    dataDir,
    decrypt: {identities: [], passphrases: []},
    encrypt: {type: 'none'},
    exclude: excludeList([], {defaults: true}),
    force: false,
    level: 1,
    lockWaitSeconds: 0,
    mode: 'cold',
    parallelism: 1,
    repo: typeof repo === 'string' ? localRepo(repo) : repo,
    service: null,
    signing: null,
    type: 'full',
    ...over,
  }
}

/** The backup's record as the repository has it (the run's result adds the clone and the downtime). */
export async function takeBackup(options: BackupOptions) {
  const backup = backupFlow(options)
  await runFlow(backup.flow, backup.ctx)
  return (await openRepository(options.repo)).getBackup(backup.result().id)
}
