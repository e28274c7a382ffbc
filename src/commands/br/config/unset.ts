import {Args} from '@oclif/core'

import {BrCommand} from '../../../base-command.js'
import {configFile, describeKeys, parseConfigKey, unsetConfig} from '../../../lib/config.js'

export default class ConfigUnset extends BrCommand {
  static override args = {
    key: Args.string({description: 'the setting, one of the keys below', required: true}),
  }
  static override description = `Remove a setting from the config file: its flag goes back to the built-in default.

Keys:

${describeKeys()}`
  static override examples = ['<%= config.bin %> <%= command.id %> service']

  async run(): Promise<{file: string; key: string; removed: boolean}> {
    const {args} = await this.parse(ConfigUnset)
    const file = configFile(this.config.configDir)
    const key = parseConfigKey(args.key)
    const removed = await unsetConfig(file, key)
    this.note(removed ? `${key} removed from ${file}` : `${key} was not set in ${file}`)
    return {file, key, removed}
  }
}
