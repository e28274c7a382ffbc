import {Args, Flags} from '@oclif/core'
import {join, resolve} from 'node:path'

import {BrCommand} from '../../base-command.js'
import {decryptFlags, quietFlag, repoFlags, restoreDirFlag, s3Flags, serviceFlags} from '../../flags.js'
import {checkParallelism} from '../../lib/archive/compress.js'
import {resolveChown} from '../../lib/archive/owners.js'
import {formatDuration} from '../../lib/format.js'
import {
  describeMapping,
  newRestoreContext,
  restoreCheckFlow,
  restoreFlow,
  type RestorePlan,
  restorePlan,
  type RestoreResult,
  restoreResult,
} from '../../lib/restore/restore.js'
import {loadDecryptOptions} from '../../lib/secrets.js'
import {serviceControl, serviceSettingsFrom, sqlProbe} from '../../service.js'

export default class Restore extends BrCommand {
  static override args = {
    id: Args.string({
      description: 'backup id, a unique prefix of one, or latest (the newest backup of the target data dir)',
      required: true,
    }),
  }
  static override description = `Restore a backup into a data directory, with the service stopped and started around it.

The backup is extracted and verified in a staging directory beside the target first; only then \
is the service stopped, the directories swapped by rename, the service started, and restore \
waits until it answers SQL. Any failure puts the previous directory back and starts the service \
again. The previous directory is kept as <data-dir>.before-<id> unless --discard-old. \
--dry-run runs the same checks (backup, key, chain, target, free space) and prints what it would \
stop, swap and start, changing nothing.

An online backup is laid out where the target MatrixOne reads it (its launch configs: --mo-config, \
default etc/launch beside the data dir, or --dn_config_path), converting CRC-32C framing between \
DISK and DISK-V2; a backup from a newer MatrixOne than the target's mo-service is refused unless \
--force-version.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> 0193… --path /backups/mo --data-dir /opt/matrixone/mo-data --identity /root/.moctl/backup.key --force --service command --stop-cmd "mo_ctl stop" --start-cmd "mo_ctl start"',
    '<%= config.bin %> <%= command.id %> latest --path /backups/mo --restore_path /opt/matrixone --identity backup.key --force --json',
    '<%= config.bin %> <%= command.id %> latest --path s3://mo-backups/prod --region eu-west-1 --data-dir /opt/matrixone/mo-data --identity backup.key --force --service mo_ctl',
    '<%= config.bin %> <%= command.id %> 0193… --path /backups/mo --data-dir /opt/matrixone/mo-data --identity backup.key --force --service mo_ctl --dry-run',
    '<%= config.bin %> <%= command.id %> latest --path /backups/mo --data-dir /opt/matrixone/mo-data --identity backup.key --force --dn_config_path /opt/matrixone/etc/launch/tn.toml --mo-service /opt/matrixone/mo-service --dry-run',
  ]
  static override flags = {
    ...repoFlags,
    ...s3Flags,
    ...decryptFlags,
    ...serviceFlags,
    ...restoreDirFlag,
    ...quietFlag,
    chown: Flags.string({
      description:
        'give every restored file this owner, names or numbers (for a host whose ids differ); by default root restores the recorded owners, by name, else by number',
      helpValue: 'USER[:GROUP]',
    }),
    'data-dir': Flags.string({
      aliases: ['data_dir'],
      description: 'the data directory to restore into: mo-data itself (also --data_dir)',
      exactlyOne: ['data-dir', 'restore-path'],
    }),
    'discard-old': Flags.boolean({
      description: 'delete the previous data directory once the restored service answers SQL',
    }),
    'dn-config-path': Flags.string({
      aliases: ['dn_config_path'],
      description:
        "the target MatrixOne's TN config, as mo_br's --dn_config_path (default: launch.toml's tnservices, else tn.toml, in --mo-config)",
      helpValue: 'FILE',
    }),
    'dry-run': Flags.boolean({
      description:
        'check the backup, key, chain and target, print what would be stopped, swapped and started; change nothing',
    }),
    force: Flags.boolean({description: 'replace a non-empty data directory (it is kept as <data-dir>.before-<id>)'}),
    'force-version': Flags.boolean({
      description:
        'restore into an older MatrixOne than the backup was taken from, or a cold backup into a target with another SHARED backend (refused otherwise; the reason is printed)',
    }),
    'keep-special-modes': Flags.boolean({
      description:
        'keep setuid, setgid and sticky bits as the backup recorded them (by default they are cleared: a MatrixOne data directory has none)',
    }),
    'mo-config': Flags.string({
      description:
        "the target MatrixOne's launch config directory, read to place an online backup's files where that MO reads them, in its format (default: etc/launch beside the data dir)",
      helpValue: 'DIR',
    }),
    'mo-service': Flags.string({
      description:
        "the target's mo-service binary, run with -version to check the backup is not from a newer MatrixOne (default: mo-service beside the data dir)",
      helpValue: 'PATH',
    }),
    parallelism: Flags.integer({
      description:
        "zstd decompression threads for an archive of independent frames (mo_br's --parallelism), 1 to 64; default: the cores here, at most 2 (restore is bound by its main thread, not zstd)",
    }),
    'restore-path': Flags.string({
      aliases: ['restore_path'],
      description: "the directory that holds mo-data, as mo_br's --restore_path (restores into <restore-path>/mo-data)",
    }),
  }

  async run(): Promise<RestorePlan | RestoreResult> {
    const {args, flags} = await this.parse(Restore)
    const parallelism = flags.parallelism === undefined ? undefined : checkParallelism(flags.parallelism)
    const repo = await this.repoAddress(flags)
    const dataDir = flags['data-dir'] ? resolve(flags['data-dir']) : join(resolve(flags['restore-path']!), 'mo-data')
    const settings = serviceSettingsFrom(flags)
    const decrypt = await loadDecryptOptions({
      env: process.env,
      identityFiles: flags.identity,
      passphraseFile: flags['passphrase-file'],
      trustedSigners: flags['trusted-signer'],
    })
    const context = newRestoreContext({
      chown: flags.chown === undefined ? undefined : await resolveChown(flags.chown),
      dataDir,
      decrypt,
      discardOld: flags['discard-old'],
      force: flags.force,
      forceVersion: flags['force-version'],
      id: args.id,
      isRunning: sqlProbe(settings),
      keepSpecialModes: flags['keep-special-modes'],
      moConfig: flags['mo-config'],
      moService: flags['mo-service'],
      onWarning: (message) => this.warn(message),
      parallelism,
      repo,
      service: serviceControl(this.config, settings, {
        dataDir,
        onWarning: (message) => this.warn(message),
        reason: 'br restore',
      }),
      tnConfig: flags['dn-config-path'],
      trust: {
        allowUnencrypted: flags['allow-unencrypted'],
        allowUnsigned: flags['allow-unsigned'],
        signers: decrypt.signers,
      },
    })
    if (flags['dry-run']) {
      const checked = await this.runFlow(restoreCheckFlow(), context)
      const {sql} = settings
      const plan = await restorePlan(
        checked,
        `SQL on ${sql.host}:${sql.port} (up to ${formatDuration(sql.deadlineMs)})`,
      )
      if (!this.jsonEnabled()) {
        process.stdout.write(
          `would restore ${plan.id} (${plan.type}) into ${plan.dataDir}:\n` +
            (plan.layout
              ? `  mapping:\n${describeMapping(plan.layout)
                  .map((line) => `    ${line}\n`)
                  .join('')}`
              : '') +
            plan.steps.map((step, i) => `  ${i + 1}. ${step}\n`).join('') +
            'nothing was changed (--dry-run)\n',
        )
      }

      return plan
    }

    const ctx = await this.runFlow(restoreFlow(), context)
    const result = restoreResult(ctx)
    if (!this.jsonEnabled()) {
      process.stdout.write(
        `restored ${result.id} into ${result.dataDir}${result.previousDataDir ? ` (previous data kept in ${result.previousDataDir})` : ''}\n`,
      )
    }

    return result
  }
}
