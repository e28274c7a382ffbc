import {Flags} from '@oclif/core'

import type {BackupRecord} from '../../lib/repo/types.js'

import {BrCommand} from '../../base-command.js'
import {repoFlags, s3Flags} from '../../flags.js'
import {openRepository} from '../../lib/repo/repository.js'
import {LIST_COLUMNS, listRows, plainColumns, tableColumns, WIDE_LIST_COLUMNS, wideListRows} from '../../lib/ui/list.js'

/** A backup whose backup.json does not read: listed, so that it can be seen and deleted. */
interface DamagedEntry {
  damaged: string
  id: string
}

export default class List extends BrCommand {
  static override description = `List the complete backups in a repository, oldest first.

Reads only the plaintext records: needs no key. A backup that never finished (no backup.json) \
is not listed; one whose backup.json is damaged is listed as DAMAGED (with --json: \
{"id", "damaged": why}), and \`br delete\` removes it. Takes no lock: it runs while a backup is being \
written.

The default columns fit 120 characters: the whole id, the type and base, the local time it \
started, its duration and stored size. --wide prints mo_br's columns (the repository path, local \
times with their offset, BACKUPTS) for scripts written for \`mo_br list\`.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> --path /backups/mo',
    '<%= config.bin %> <%= command.id %> --path /backups/mo --wide',
    '<%= config.bin %> <%= command.id %> --path /backups/mo --json',
    '<%= config.bin %> <%= command.id %> --path s3://mo-backups/prod --region eu-west-1',
  ]
  static override flags = {
    ...repoFlags,
    ...s3Flags,
    wide: Flags.boolean({description: "mo_br's columns: the repository path, times with their offset, BACKUPTS"}),
  }

  async run(): Promise<Array<BackupRecord | DamagedEntry>> {
    const {flags} = await this.parse(List)
    const repo = await this.repoAddress(flags)
    const {damaged, records} = await (await openRepository(repo)).scanBackups()
    for (const d of damaged) this.warn(`backup ${d.id} is damaged: ${d.reason.replace(`backup ${d.id}: `, '')}`)
    if (!this.jsonEnabled()) {
      const head = flags.wide ? WIDE_LIST_COLUMNS : LIST_COLUMNS
      const rows = flags.wide ? wideListRows(records, damaged, repo.location) : listRows(records, damaged)
      process.stdout.write(plainColumns(head, rows) ?? (await tableColumns(head, rows)))
    }

    return [...records, ...damaged.map((d) => ({damaged: d.reason, id: d.id}))].sort((a, b) => (a.id < b.id ? -1 : 1))
  }
}
