import {BrCommand} from '../../../base-command.js'
import {configFile, type ConfigValues, readConfig} from '../../../lib/config.js'

export default class ConfigList extends BrCommand {
  static override description = `List the settings of the config file as key=value lines.

Each is the default of the br commands' flag of the same name.`
  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --json']

  async run(): Promise<{file: string; values: ConfigValues}> {
    await this.parse(ConfigList)
    const file = configFile(this.config.configDir)
    const values = await readConfig(file)
    if (!this.jsonEnabled()) {
      process.stdout.write(
        Object.entries(values)
          .map(([key, value]) => `${key}=${value}\n`)
          .join(''),
      )
      if (Object.keys(values).length === 0) this.note(`no settings in ${file}`)
    }

    return {file, values}
  }
}
