import {Flags} from '@oclif/core'

import {BrCommand} from '../../../base-command.js'
import {generateKeyFile} from '../../../lib/keys.js'

export default class KeyGenerate extends BrCommand {
  static override description = `Generate an age X25519 identity for encrypting backups.

Writes the identity (the secret key) to --output with mode 0600 and prints its public key
(age1…): give that to backup as --recipient; keep the identity file safe and offline, restore
and verify need it. Refuses to overwrite an existing file.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> --output /root/.moctl/backup.key',
    '<%= config.bin %> <%= command.id %> --output backup.key --json',
  ]
  static override flags = {
    output: Flags.string({
      char: 'o',
      description: 'file to write the identity to (mode 0600; must not exist)',
      required: true,
    }),
  }

  async run(): Promise<{identityFile: string; recipient: string}> {
    const {flags} = await this.parse(KeyGenerate)
    const result = await generateKeyFile(flags.output)
    if (!this.jsonEnabled()) {
      process.stdout.write(`${result.recipient}\n`)
      this.note(
        `identity written to ${result.identityFile}; back up this file: without it the backups cannot be restored`,
      )
    }

    return result
  }
}
