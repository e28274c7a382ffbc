import {Args} from '@oclif/core'

import {BrCommand} from '../../../base-command.js'
import {type ConfigEntry, configFile, describeKeys, parseConfigKey, readConfig} from '../../../lib/config.js'
import {BrError} from '../../../lib/errors.js'

export default class ConfigGet extends BrCommand {
  static override args = {
    key: Args.string({description: 'the setting, one of the keys below', required: true}),
  }
  static override description = `Print one setting of the config file, as mo_ctl's get_conf does.

Exits 1 when the key is not set. Keys:

${describeKeys()}`
  static override examples = [
    '<%= config.bin %> <%= command.id %> path',
    '<%= config.bin %> <%= command.id %> service --json',
  ]

  async run(): Promise<ConfigEntry> {
    const {args} = await this.parse(ConfigGet)
    const file = configFile(this.config.configDir)
    const key = parseConfigKey(args.key)
    const value = (await readConfig(file))[key]
    if (value === undefined) {
      throw new BrError('error', `${key} is not set in ${file}`, {
        suggestions: [`set it with: ${this.config.bin} br config set ${key} VALUE`],
      })
    }

    if (!this.jsonEnabled()) process.stdout.write(`${value}\n`)
    return {file, key, value}
  }
}
