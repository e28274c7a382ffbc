import {Flags} from '@oclif/core'

import {BrCommand} from '../../../base-command.js'
import {generateKeyFile, generateKeyPair, type KeyPairFiles} from '../../../lib/keys.js'

type Result = KeyPairFiles | {identityFile: string; recipient: string}

export default class KeyGenerate extends BrCommand {
  static override description = `Generate the keys for encrypted, signed backups.

With --writer-key and --reader-key (recommended), writes two files (mode 0600, their directory
created 0700 if missing):
- the writer key, for the backup host: the age recipient and an Ed25519 signing key. backup
  --writer-key encrypts to the recipient and signs the record; it cannot read any backup.
- the reader key, for the disaster-recovery vault: the age identity and the signer's public key
  (brsig1…). verify and restore --identity decrypt with it and accept only backups it signed.
With --output, writes a plain age identity (encrypts and reads; signs nothing).
Prints the public key (age1…). Refuses to overwrite an existing file.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> --writer-key /etc/moctl/writer.key --reader-key /root/vault/reader.key',
    '<%= config.bin %> <%= command.id %> --writer-key writer.key --reader-key reader.key --json',
    '<%= config.bin %> <%= command.id %> --output /root/.moctl/backup.key',
  ]
  static override flags = {
    output: Flags.string({
      char: 'o',
      description: 'write a plain age identity to this file (no signing key)',
      exactlyOne: ['output', 'writer-key'],
    }),
    'reader-key': Flags.string({
      dependsOn: ['writer-key'],
      description: 'file for the reader key: age identity + trusted signer (keep it offline)',
    }),
    'writer-key': Flags.string({
      dependsOn: ['reader-key'],
      description: 'file for the writer key: age recipient + signing key (for the backup host)',
    }),
  }
  /** --writer-key here names a file to create, not the config's writer key to use. */
  static takesConfigDefaults = false

  async run(): Promise<Result> {
    const {flags} = await this.parse(KeyGenerate)
    if (flags.output) {
      const result = await generateKeyFile(flags.output)
      if (!this.jsonEnabled()) {
        process.stdout.write(`${result.recipient}\n`)
        this.note(
          `identity written to ${result.identityFile}; back up this file: without it the backups cannot be restored`,
        )
      }

      return result
    }

    const result = await generateKeyPair(flags['writer-key']!, flags['reader-key']!)
    if (!this.jsonEnabled()) {
      process.stdout.write(`${result.recipient}\n`)
      this.note(
        [
          `writer key: ${result.writerKey} (for the backup host: backup --writer-key)`,
          `reader key: ${result.readerKey} (keep it offline: verify/restore --identity; without it the backups cannot be restored)`,
          `signer: ${result.signer}`,
        ].join('\n'),
      )
    }

    return result
  }
}
