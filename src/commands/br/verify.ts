import {Args, Flags} from '@oclif/core'
import {resolve} from 'node:path'

import {BrCommand} from '../../base-command.js'
import {decryptFlags, repoFlags} from '../../flags.js'
import {newVerifyContext, verifyFlow, type VerifyResult, verifyResult} from '../../lib/restore/verify.js'
import {loadDecryptOptions} from '../../lib/secrets.js'

export default class Verify extends BrCommand {
  static override args = {id: Args.string({description: 'backup id (or a unique prefix of one)', required: true})}
  static override description = `Check that a backup can be restored, without restoring it.

Decrypts, decompresses and re-hashes every file against the manifest, and the stored archive
against the SHA-256 in its record. --quick checks only the SHA-256 and size of every stored
object of the chain, and needs no key. Records are checked against the trusted signers (the
reader key's, --trusted-signer): an unsigned or foreign backup is refused; without signers,
a warning says that authenticity was not checked. Exit 3 when anything does not match.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> 0193… --path /backups/mo --identity /root/.moctl/backup.key',
    '<%= config.bin %> <%= command.id %> 0193… --path /backups/mo --quick --trusted-signer brsig1… --json',
  ]
  static override flags = {
    ...repoFlags,
    ...decryptFlags,
    quick: Flags.boolean({description: "check only the stored archive's SHA-256 and size (no key needed)"}),
  }

  async run(): Promise<VerifyResult> {
    const {args, flags} = await this.parse(Verify)
    // --quick reads no archive, but the reader key's signers still decide which records are accepted.
    const keys = await loadDecryptOptions({
      env: process.env,
      identityFiles: flags.identity,
      passphraseFile: flags.quick ? undefined : flags['passphrase-file'],
      trustedSigners: flags['trusted-signer'],
    })
    const ctx = await this.runFlow(
      verifyFlow(),
      newVerifyContext({
        decrypt: keys,
        id: args.id,
        onWarning: (message) => this.warn(message),
        quick: flags.quick,
        repoPath: resolve(flags.path),
        trust: {
          allowUnencrypted: flags['allow-unencrypted'],
          allowUnsigned: flags['allow-unsigned'],
          signers: keys.signers,
        },
      }),
    )
    const result = verifyResult(ctx)
    if (!this.jsonEnabled()) process.stdout.write(`backup ${result.id}: ok (${result.checked})\n`)
    return result
  }
}
