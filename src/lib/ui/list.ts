/**
 * The rows of `br list`. By default what fits 120 columns: the whole id (to copy), the type and
 * base, a compact local time, the duration and the stored size. `--wide` gives mo_br's columns,
 * so operators and scripts used to `mo_br list` read it the same way. A damaged record is a row
 * in both, so that it can be seen and deleted. Pure: records in, strings out.
 */
import type {DamagedBackup} from '../repo/repository.js'
import type {BackupRecord} from '../repo/types.js'

import {formatBytes, formatDuration} from '../format.js'

export const LIST_COLUMNS = ['ID', 'TYPE', 'BASE', 'CREATED', 'DURATION', 'SIZE']

export const WIDE_LIST_COLUMNS = [
  'ID',
  'SIZE',
  'PATH',
  'AT TIME',
  'DURATION',
  'COMPLETE TIME',
  'BACKUPTS',
  'BACKUPTYPE',
]

/** A base's first 13 characters: a UUIDv7's millisecond, unique enough to tell and a valid prefix to pass. */
const SHORT_ID = 13

export function listRows(records: BackupRecord[], damaged: DamagedBackup[]): string[][] {
  const rows = records.map((r) => [
    r.id,
    r.type,
    r.base ? r.base.slice(0, SHORT_ID) : '-',
    compactLocalTime(r.createdAt),
    formatDuration(r.durationMs),
    formatBytes(r.archive.size),
  ])
  const bad = damaged.map((d) => [d.id, 'DAMAGED', '-', '-', '-', '-'])
  return byId([...rows, ...bad])
}

export function wideListRows(records: BackupRecord[], damaged: DamagedBackup[], location: string): string[][] {
  const rows = records.map((r) => [
    r.id,
    formatBytes(r.archive.size),
    location,
    localTime(r.createdAt),
    formatDuration(r.durationMs),
    localTime(r.completedAt),
    r.backupTs,
    r.type === 'full' ? r.type : `${r.type} (base ${r.base})`,
  ])
  const bad = damaged.map((d) => [d.id, '-', location, '-', '-', '-', '-', 'DAMAGED (see the warning)'])
  return byId([...rows, ...bad])
}

const byId = (rows: string[][]) => rows.sort((a, b) => (a[0] < b[0] ? -1 : 1))

/** 'YYYY-MM-DD HH:MM:SS' in local time: what an operator on the host compares with its clock. */
export function compactLocalTime(iso: string): string {
  return localTime(iso).slice(0, 19)
}

/** mo_br prints local times as 'YYYY-MM-DD HH:MM:SS ±HHMM'. */
export function localTime(iso: string): string {
  const d = new Date(iso)
  const pad = (n: number) => String(Math.abs(n)).padStart(2, '0')
  const off = -d.getTimezoneOffset()
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${off >= 0 ? '+' : '-'}${pad(Math.trunc(off / 60))}${pad(off % 60)}`
}
