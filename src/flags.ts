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
const configRequired = new WeakSet<object>()

export function requiredUnlessConfig<F extends object>(flag: F): F {
  configRequired.add(flag)
  return flag
}

export const isRequiredUnlessConfig = (flag: object): boolean => configRequired.has(flag)

export const repoFlags = {
  'backup-dir': Flags.string({
    aliases: ['backup_dir'],
    default: 'filesystem',
    description: "kind of repository (mo_br's --backup_dir); only a local filesystem path for now",
    options: ['filesystem'],
  }),
  path: requiredUnlessConfig(
    Flags.string({
      aliases: ['repo'],
      description: 'the repository: a local directory (required, or `br config set path`; also --repo)',
      env: 'MOCTL_BR_REPO',
    }),
  ),
}

/** mo_br's --restore_dir: where the backup is read from; like --backup_dir, only a filesystem repository. */
export const restoreDirFlag = {
  'restore-dir': Flags.string({
    aliases: ['restore_dir'],
    default: 'filesystem',
    description: "kind of repository to restore from (mo_br's --restore_dir); only a local filesystem path for now",
    options: ['filesystem'],
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
