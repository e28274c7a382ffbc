import {Flags} from '@oclif/core'
import {join, resolve} from 'node:path'

import {BrCommand} from '../../base-command.js'
import {
  lockFlags,
  objectLockFlags,
  quietFlag,
  repoFlags,
  requiredUnlessConfig,
  s3Flags,
  serviceFlags,
  stageFlags,
  writerKeyFlag,
} from '../../flags.js'
import {
  checkParallelism,
  DEFAULT_COMPRESS_THREADS,
  defaultParallelism,
  MAX_PARALLELISM,
} from '../../lib/archive/compress.js'
import {backupFlow, type BackupResult, DEFAULT_EXCLUDES, excludeList} from '../../lib/backup/backup.js'
import {usageError} from '../../lib/errors.js'
import {ManifestCache} from '../../lib/repo/manifest-cache.js'
import {loadDecryptOptions, loadEncryptOptions} from '../../lib/secrets.js'
import {serviceControl, serviceSettingsFrom, sqlProbe} from '../../service.js'
import {stageAddress} from '../../stage-address.js'

export default class Backup extends BrCommand {
  static override description = `Take a full or incremental physical backup of a MatrixOne data directory.

The directory is packed into a tar archive, compressed with zstd and encrypted with age, with \
a SHA-256 for every file, and written atomically into the repository (created if missing). \
A cold backup reads the directory with the service stopped: --service mo_ctl, systemd or command \
stops and starts it around the read; with --service none it must already be stopped (refused \
while something answers SQL on --host:--port, unless --allow-running). With --clone \
the service is down only while the files are cloned (a reflink on XFS or btrfs, a copy elsewhere), \
and the pack reads the clone after the service is back. One writer \
at a time: a second backup, delete or prune on the repository fails (exit 4) unless --wait-lock. \
Defaults for the flags can be kept with \`moctl br config set\`. Prints the new backup id.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> --path /backups/mo --data-dir /opt/matrixone/mo-data --writer-key /etc/moctl/writer.key --service mo_ctl',
    '<%= config.bin %> <%= command.id %> --path /backups/mo --data-dir /opt/matrixone/mo-data --writer-key /etc/moctl/writer.key --type incremental',
    '<%= config.bin %> <%= command.id %> --path /backups/mo --data-dir /opt/matrixone/mo-data --recipient age1… --service mo_ctl',
    '<%= config.bin %> <%= command.id %> --path /backups/mo --data-dir /opt/matrixone/mo-data --recipient age1… --service systemd --clone',
    '<%= config.bin %> <%= command.id %> --path /backups/mo --data-dir /opt/matrixone/mo-data --recipient age1… --service command --stop-cmd "mo_ctl stop" --start-cmd "mo_ctl start"',
    '<%= config.bin %> <%= command.id %> --path /backups/mo --data-dir /opt/matrixone/mo-data --recipients-file /etc/moctl/recipients --json',
    '<%= config.bin %> <%= command.id %> --backup_dir filesystem --path /backups/mo --data-dir ./mo-data --passphrase-file /root/.moctl/pass',
    '<%= config.bin %> <%= command.id %> --path s3://mo-backups/prod --region eu-west-1 --data-dir /opt/matrixone/mo-data --writer-key /etc/moctl/writer.key --service mo_ctl',
    '<%= config.bin %> <%= command.id %> --path s3://mo-backups/prod --endpoint https://minio.example.com:9000 --force-path-style --access-key-id backup-host --secret-access-key-file /etc/moctl/s3.secret --data-dir /opt/matrixone/mo-data --writer-key /etc/moctl/writer.key --object-lock-days 35',
  ]
  static override flags = {
    ...repoFlags,
    ...s3Flags,
    ...stageFlags,
    ...objectLockFlags,
    ...serviceFlags,
    ...lockFlags,
    ...writerKeyFlag,
    'allow-running': Flags.boolean({
      description:
        'cold, --service none: back up although something answers SQL on --host:--port (refused by default: a copy of a running service is not consistent)',
    }),
    ...quietFlag,
    base: Flags.string({
      aliases: ['base_id'],
      description:
        "incremental: the backup to build on, or latest (the newest backup of --data-dir); default the newest backup of this data dir and host (mo_br's --base_id)",
      relationships: [{flags: [{name: 'type', when: async (f) => f.type === 'incremental'}], type: 'all'}],
    }),
    checksum: Flags.boolean({
      description: 'incremental: decide what changed by content hash, not size and mtime (reads every file)',
    }),
    clone: Flags.boolean({
      description:
        'cold: copy the files into a clone (a reflink where the filesystem can) while the service is stopped, start it, then pack from the clone: downtime is the copy, not the pack',
    }),
    'clone-dir': Flags.string({
      dependsOn: ['clone'],
      description: 'where --clone puts its copy (default: beside the data dir, where reflinks work)',
    }),
    'data-dir': requiredUnlessConfig(
      Flags.string({
        aliases: ['data_dir'],
        description:
          'the data directory to back up: mo-data itself (required, or `br config set data-dir`; also --data_dir)',
        env: 'MOCTL_BR_DATA_DIR',
      }),
    ),
    exclude: Flags.string({
      description: `path under the data dir to leave out (repeatable), on top of the MO caches left out by default (${DEFAULT_EXCLUDES.join(', ')})`,
      multiple: true,
    }),
    force: Flags.boolean({description: 'incremental: accept a --base taken from another data dir or host'}),
    identity: Flags.string({
      char: 'i',
      description:
        "incremental: age identity to read the base's manifest when this host has no cached copy (env MOCTL_BR_IDENTITY)",
      multiple: true,
    }),
    level: Flags.integer({default: 3, description: 'zstd compression level', max: 19, min: 1}),
    mode: Flags.string({
      default: 'cold',
      description:
        "cold: read the data dir with the service stopped; online: MO's own BACKUP statement while MO runs (on the MO host)",
      options: ['cold', 'online'],
    }),
    'no-default-excludes': Flags.boolean({
      description: `back up the MO caches too (${DEFAULT_EXCLUDES.join(', ')}): only --exclude paths are left out`,
    }),
    'no-encrypt': Flags.boolean({
      description: 'store the archive unencrypted (explicit opt-out)',
      exclusive: ['recipient', 'recipients-file', 'passphrase-file', 'writer-key'],
    }),
    'online-dir': Flags.string({
      description: "online: where MO's BACKUP writes its folder before it is packed (default: beside the data dir)",
    }),
    parallelism: Flags.integer({
      description: `zstd compression workers, 1-${MAX_PARALLELISM} (1: compress on the main thread); online: also BACKUP's PARALLELISM (mo_br's --parallelism). Default: the number of cores, at most ${DEFAULT_COMPRESS_THREADS}`,
    }),
    'passphrase-file': Flags.string({
      description: 'encrypt with the passphrase in this file (env MOCTL_BR_PASSPHRASE)',
      exclusive: ['recipient', 'recipients-file', 'writer-key'],
    }),
    recipient: Flags.string({
      char: 'r',
      description: 'age public key (age1…) to encrypt to, repeatable (env MOCTL_BR_RECIPIENT)',
      multiple: true,
    }),
    'recipients-file': Flags.string({description: 'file of age public keys, one a line', multiple: true}),
    type: Flags.string({
      aliases: ['backup_type'],
      default: 'full',
      description: 'full, or incremental on top of --base (mo_br --backup_type)',
      options: ['full', 'incremental'],
    }),
  }

  async run(): Promise<BackupResult> {
    const {flags} = await this.parse(Backup)
    // First: a wrong repository address is refused before any key is read or service stopped.
    const repo = await this.repoAddress(flags)
    const dataDir = resolve(flags['data-dir']!)
    const settings = serviceSettingsFrom(flags)
    const online = flags.mode === 'online'
    const stage = await stageAddress(flags, repo)
    const parallelism = checkParallelism(flags.parallelism ?? defaultParallelism())
    if (online && flags.clone) {
      throw usageError('--clone is for cold backups', 'drop --clone: an online backup never stops MO')
    }

    const {encrypt, signing} = await loadEncryptOptions({
      env: process.env,
      noEncrypt: flags['no-encrypt'],
      passphraseFile: flags['passphrase-file'],
      recipients: flags.recipient,
      recipientsFiles: flags['recipients-file'],
      writerKeyFile: flags['writer-key'],
    })
    // A passphrase binds the record; --no-encrypt chose no protection at all, and said so.
    if (!signing && encrypt.type === 'recipients') {
      this.warn(
        'this backup is not signed: readers cannot tell it from one forged by whoever can write the repository (pass --writer-key from `moctl br key generate`)',
      )
    }

    const decrypt = await loadDecryptOptions({env: process.env, identityFiles: flags.identity})
    // A passphrase backup's base was encrypted with the same passphrase.
    if (encrypt.type === 'passphrase') decrypt.passphrases.push(encrypt.passphrase)
    const backup = backupFlow({
      allowRunning: flags['allow-running'],
      baseId: flags.base,
      cache: new ManifestCache(join(this.config.cacheDir, 'manifests')),
      checksum: flags.checksum,
      clone: flags.clone,
      cloneDir: flags['clone-dir'] ? resolve(flags['clone-dir']) : undefined,
      dataDir,
      decrypt,
      encrypt,
      exclude: excludeList(flags.exclude ?? [], {defaults: !flags['no-default-excludes']}),
      force: flags.force,
      isRunning: sqlProbe(settings),
      level: flags.level,
      lockWaitSeconds: flags['wait-lock'],
      mode: online ? 'online' : 'cold',
      onlineDir: flags['online-dir'] ? resolve(flags['online-dir']) : undefined,
      onWarning: (message) => this.warn(message),
      parallelism,
      repo,
      service: serviceControl(this.config, settings, {
        dataDir,
        onWarning: (message) => this.warn(message),
        reason: 'br backup',
      }),
      signing,
      sql: settings.sql,
      stage,
      type: flags.type as 'full' | 'incremental',
    })
    // The flow holds the repository lock from its first step and releases it itself.
    await this.runFlow(backup.flow, backup.ctx)

    const result = backup.result()
    if (!this.jsonEnabled()) process.stdout.write(`${result.id}\n`)
    return result
  }
}
