/**
 * The rows of `br list`. By default what fits 120 columns: the whole id (to copy), the type and
 * base, a compact local time, the duration and the stored size. `--wide` gives mo_br's columns,
 * so operators and scripts used to `mo_br list` read it the same way. A damaged record is a row
 * in both, so that it can be seen and deleted. Pure: records in, strings out.
 *
 * `plainColumns` lays the rows out as cli-table3 does with the list's borderless style, in a
 * fraction of its time (cli-table3 measures every cell's display width: 80 ms for 100 rows, a
 * sixth of the command's start-up). It does so only for printable ASCII, where a character is one
 * column; anything else (a --wide path in another script) is left to cli-table3.
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

/** Gap after each column but the last, as cli-table3's padding-right of 2. */
const GAP = 2

/**
 * The rows under the head, each column as wide as its widest cell plus GAP, no trailing spaces;
 * undefined when a cell is not printable ASCII (its display width is not its length).
 */
export function plainColumns(head: string[], rows: string[][]): string | undefined {
  const all = [head, ...rows]
  if (all.some((row) => row.some((cell) => !/^[\u0020-\u007E]*$/.test(cell)))) return undefined
  const widths = head.map((_, i) => Math.max(...all.map((row) => (row[i] ?? '').length)))
  const line = (row: string[]) =>
    widths
      .map((w, i) => (i === widths.length - 1 ? (row[i] ?? '') : (row[i] ?? '').padEnd(w + GAP)))
      .join('')
      .trimEnd()
  return `${all.map((row) => line(row)).join('\n')}\n`
}

/** The rows as cli-table3 lays them out: for cells plainColumns cannot measure (not ASCII). */
export async function tableColumns(head: string[], rows: string[][]): Promise<string> {
  // Loaded only then: --json and ASCII tables never need it.
  const {default: Table} = await import('cli-table3')
  const table = new Table({
    chars: BORDERLESS,
    head,
    style: {border: [], compact: true, head: [], 'padding-left': 0, 'padding-right': 2},
  })
  table.push(...rows)
  // The last column's padding would end every line in spaces.
  return `${table.toString().replaceAll(/ +$/gm, '')}\n`
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
