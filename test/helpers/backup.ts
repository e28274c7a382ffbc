/**
 * A backup taken in process for tests of what comes after one (bases, plans, the manifest cache):
 * backupFlow on real dirs, unencrypted unless told, no service to stop.
 */
import {join} from 'node:path'

import {backupFlow, type BackupOptions, excludeList} from '../../src/lib/backup/backup.js'
import {generateKeyPair} from '../../src/lib/keys.js'
import {localRepo, type RepoAddress} from '../../src/lib/repo/address.js'
import {ManifestCache} from '../../src/lib/repo/manifest-cache.js'
import {openRepository} from '../../src/lib/repo/repository.js'
import {loadEncryptOptions} from '../../src/lib/secrets.js'
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

/**
 * A backup host's keys in `dir`, as `key generate --writer-key --reader-key` makes them: the
 * writer's options for optionsFor (encrypt to its recipient, sign, and a manifest cache, so
 * incrementals are planned without the reader key), and the reader key's path.
 */
export async function signedWriter(dir: string): Promise<{readerKey: string; write: Partial<BackupOptions>}> {
  const keys = await generateKeyPair(join(dir, 'writer.key'), join(dir, 'reader.key'))
  const write = await loadEncryptOptions({env: {}, writerKeyFile: keys.writerKey})
  return {readerKey: keys.readerKey, write: {...write, cache: new ManifestCache(join(dir, 'cache'))}}
}
