import {Args} from '@oclif/core'

import {BrCommand} from '../../../base-command.js'
import {type ConfigEntry, configFile, describeKeys, parseConfigKey, setConfig} from '../../../lib/config.js'
import {redactCommand} from '../../../lib/redact.js'

export default class ConfigSet extends BrCommand {
  static override args = {
    key: Args.string({description: 'the setting, one of the keys below', required: true}),
    value: Args.string({description: 'its value (paths are stored absolute)', required: true}),
  }
  static override description = `Set a default for the br commands' flags, as mo_ctl's set_conf does.

Kept in config.json in the CLI's config directory (mode 0600). A flag given on the command line, or its environment variable, still wins over the file. No secrets: store the path of an identity file or of a password file (password-file), never a key or a password. Keys:

${describeKeys()}`
  static override examples = [
    '<%= config.bin %> <%= command.id %> path /backups/mo',
    '<%= config.bin %> <%= command.id %> data-dir /opt/matrixone/mo-data',
    '<%= config.bin %> <%= command.id %> service mo_ctl',
    '<%= config.bin %> <%= command.id %> recipient age1…',
  ]

  async run(): Promise<ConfigEntry> {
    const {args} = await this.parse(ConfigSet)
    const file = configFile(this.config.configDir)
    const key = parseConfigKey(args.key)
    const value = await setConfig(file, key, args.value)
    const shown = typeof value === 'string' ? redactCommand(value) : value
    if (shown !== value) {
      this.warn(
        `${key} holds what looks like a password: it is kept in ${file} (mode 0600) and shown whole by config get and list; a client option file keeps it out (e.g. mysqladmin --defaults-extra-file=FILE)`,
      )
    }

    this.note(`${key} = ${shown} (in ${file})`)
    return {file, key, value}
  }
}
