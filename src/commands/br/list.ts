import Table from 'cli-table3'
import {resolve} from 'node:path'

import type {BackupRecord} from '../../lib/repo/types.js'

import {BrCommand} from '../../base-command.js'
import {repoFlags} from '../../flags.js'
import {openRepository} from '../../lib/repo/repository.js'
import {LIST_COLUMNS, listRows} from '../../lib/ui/list.js'

export default class List extends BrCommand {
  static override description = `List the complete backups in a repository, oldest first.

Reads only the plaintext records: needs no key. A backup that never finished (no backup.json)
is not listed.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> --path /backups/mo',
    '<%= config.bin %> <%= command.id %> --path /backups/mo --json',
  ]
  static override flags = {...repoFlags}

  async run(): Promise<BackupRecord[]> {
    const {flags} = await this.parse(List)
    const repoPath = resolve(flags.path)
    const records = await (await openRepository(repoPath)).listBackups()
    if (!this.jsonEnabled()) {
      const table = new Table({
        chars: BORDERLESS,
        head: LIST_COLUMNS,
        style: {border: [], compact: true, head: [], 'padding-left': 0, 'padding-right': 2},
      })
      table.push(...listRows(records, repoPath))
      process.stdout.write(`${table.toString()}\n`)
    }

    return records
  }
}

const BORDERLESS = Object.fromEntries(
  [
    'top',
    'top-mid',
    'top-left',
    'top-right',
    'bottom',
    'bottom-mid',
    'bottom-left',
    'bottom-right',
    'left',
    'left-mid',
    'mid',
    'mid-mid',
    'right',
    'right-mid',
    'middle',
  ].map((k) => [k, '']),
)
