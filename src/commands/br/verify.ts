import {Args, Flags} from '@oclif/core'

import {BrCommand} from '../../base-command.js'
import {decryptFlags, quietFlag, repoFlags, s3Flags} from '../../flags.js'
import {checkParallelism} from '../../lib/archive/compress.js'
import {BrError, ExitCode, usageError} from '../../lib/errors.js'
import {
  newVerifyContext,
  verifyAll,
  verifyAllExitCode,
  verifyFlow,
  type VerifyOutcome,
  type VerifyResult,
  verifyResult,
} from '../../lib/restore/verify.js'
import {loadDecryptOptions} from '../../lib/secrets.js'

export default class Verify extends BrCommand {
  static override aliases = ['br:check']
  static override args = {
    id: Args.string({
      description: 'backup id, a unique prefix of one, or latest (the newest backup in the repository)',
    }),
  }
  static override description = `Check that a backup can be restored, without restoring it.

Decrypts, decompresses and re-hashes every file against the manifest, and the stored archive \
against the SHA-256 in its record. --quick checks only the SHA-256 and size of every stored \
object of the chain, and needs no key; on S3 an object whose store checksum is the one its \
record names is not read at all (--json's checkedBy says, per backup, "store checksum" or \
"hashed"). Records are checked against the trusted signers (the \
reader key's, --trusted-signer): an unsigned or foreign backup is refused; without signers, \
a warning says that authenticity was not checked. Exit 3 when anything does not match.

--all checks every backup of the repository and prints one line each: its id, then ok or what \
is wrong; exit 3 when any is bad (with --json: an array of per-backup results). Takes no lock: \
it runs while a backup is being written. Also \`br check\` (mo_br's name).`
  static override examples = [
    '<%= config.bin %> <%= command.id %> 0193… --path /backups/mo --identity /root/.moctl/backup.key',
    '<%= config.bin %> <%= command.id %> latest --path /backups/mo --quick --trusted-signer brsig1… --json',
    '<%= config.bin %> <%= command.id %> --all --path /backups/mo --identity /root/.moctl/backup.key',
  ]
  static override flags = {
    ...repoFlags,
    ...s3Flags,
    ...decryptFlags,
    ...quietFlag,
    all: Flags.boolean({description: 'verify every backup of the repository, one line each'}),
    parallelism: Flags.integer({
      description:
        "zstd decompression threads for an archive of independent frames (mo_br's --parallelism), 1 to 64; default: the cores here, at most 2 (restore is bound by its main thread, not zstd)",
    }),
    quick: Flags.boolean({description: "check only the stored archive's SHA-256 and size (no key needed)"}),
  }

  async run(): Promise<VerifyOutcome[] | VerifyResult> {
    const {args, flags} = await this.parse(Verify)
    if (Boolean(args.id) === Boolean(flags.all)) {
      throw usageError(
        flags.all ? 'give either a backup id or --all, not both' : 'no backup named',
        'pass a backup id (or latest), or --all for every backup',
      )
    }

    const parallelism = flags.parallelism === undefined ? undefined : checkParallelism(flags.parallelism)
    const repo = await this.repoAddress(flags)
    // --quick reads no archive, but the reader key's signers still decide which records are accepted.
    const keys = await loadDecryptOptions({
      env: process.env,
      identityFiles: flags.identity,
      passphraseFile: flags.quick ? undefined : flags['passphrase-file'],
      trustedSigners: flags['trusted-signer'],
    })
    // --all: one warning of a kind, not one a backup.
    const warned = new Set<string>()
    const onWarning = (message: string) => {
      if (!warned.has(message)) this.warn(message)
      warned.add(message)
    }

    const verifyOne = async (id: string) =>
      verifyResult(
        await this.runFlow(
          verifyFlow(),
          newVerifyContext({
            decrypt: keys,
            id,
            onWarning,
            parallelism,
            quick: flags.quick,
            repo,
            trust: {
              allowUnencrypted: flags['allow-unencrypted'],
              allowUnsigned: flags['allow-unsigned'],
              signers: keys.signers,
            },
          }),
        ),
      )

    if (!flags.all) {
      const result = await verifyOne(args.id!)
      if (!this.jsonEnabled()) process.stdout.write(`backup ${result.id}: ok (${result.checked})\n`)
      return result
    }

    const outcomes = await verifyAll(repo, verifyOne, (o) => {
      if (!this.jsonEnabled()) process.stdout.write(`${o.id}  ${o.error ? o.error.message : `ok (${o.checked})`}\n`)
    })
    const code = verifyAllExitCode(outcomes)
    if (code !== 'ok') {
      const bad = outcomes.filter((o) => o.error).length
      // --json: the array is the result, and the exit code says that some failed.
      if (this.jsonEnabled()) process.exitCode = ExitCode[code]
      else throw new BrError(code, `${bad} of ${outcomes.length} backups failed verification`)
    }

    return outcomes
  }
}
