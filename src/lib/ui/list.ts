/**
 * The rows of `br list`: mo_br's columns, so operators and scripts used to `mo_br list` read it
 * the same way. Pure: records in, strings out.
 */
import type {DamagedBackup} from '../repo/repository.js'
import type {BackupRecord} from '../repo/types.js'

import {formatBytes, formatDuration} from '../format.js'

export const LIST_COLUMNS = ['ID', 'SIZE', 'PATH', 'AT TIME', 'DURATION', 'COMPLETE TIME', 'BACKUPTS', 'BACKUPTYPE']

export function listRows(records: BackupRecord[], damaged: DamagedBackup[], repoPath: string): string[][] {
  const rows = records.map((r) => [
    r.id,
    formatBytes(r.archive.size),
    repoPath,
    localTime(r.createdAt),
    formatDuration(r.durationMs),
    localTime(r.completedAt),
    r.backupTs,
    r.type === 'full' ? r.type : `${r.type} (base ${r.base})`,
  ])
  const bad = damaged.map((d) => [d.id, '-', repoPath, '-', '-', '-', '-', 'DAMAGED (see the warning)'])
  return [...rows, ...bad].sort((a, b) => (a[0] < b[0] ? -1 : 1))
}

/** mo_br prints local times as 'YYYY-MM-DD HH:MM:SS ±HHMM'. */
export function localTime(iso: string): string {
  const d = new Date(iso)
  const pad = (n: number) => String(Math.abs(n)).padStart(2, '0')
  const off = -d.getTimezoneOffset()
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${off >= 0 ? '+' : '-'}${pad(Math.trunc(off / 60))}${pad(off % 60)}`
}
