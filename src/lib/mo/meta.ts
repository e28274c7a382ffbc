/**
 * Reads the metadata files a MatrixOne `BACKUP` statement writes into its folder: `mo_meta`,
 * `tae/tae_sum` and `tae/tae_list`. All three are CSV written with Go's `encoding/csv`.
 *
 * What MO writes (matrixone pkg/backup/backup.go `saveMetas`, `saveTaeFilesList`; types.go
 * `Meta.CsvString`, `taeFile.CsvString`, `taeBackupTimeAndSizeToCsv`):
 *
 *   mo_meta       one line per item, `type,subtype,filename`:
 *                   version,0823,                        backup format version (`backup.Version`)
 *                   buildinfo,GoVersion: go1.22|BranchName: …|CommitID: …|BuildTime: …|Version: v2.0.2,
 *                   launchconfig,cn,cn.toml_<uuidv7>     copies of the launch configs under config/
 *   tae/tae_sum   one line: `backupTime,size,backupTS,type`, e.g.
 *                   2024-05-15 11:56:44,68157440,1715745404915410000-1,full
 *                 backupTime is Go's time.DateTime; size the sum of tae_list's sizes; backupTS a
 *                 TAE timestamp `<physical ns>-<logical>` (types.TS.ToString): the value `mo_br
 *                 list` shows as BACKUPTS and the TIMESTAMP an incremental BACKUP starts from.
 *                 Servers from before incremental backups (2023) wrote only the first two fields.
 *   tae/tae_list  one line per file under tae/: `path,size,sha256hex,needCopy,ts`; path relative
 *                 to tae/ (`<object>`, `ckp/<name>`, `gc/<name>`), size the content size (not
 *                 the framed size on disk, see framing.ts), sha256 empty for files MO rewrote
 *                 while copying (the trimmed checkpoint), needCopy false for objects an
 *                 incremental left to its base (they are listed, not copied).
 *
 * Guarantees: pure functions of the text; unknown `mo_meta` lines are kept aside, not refused;
 * what we rely on (the format version, the backup ts, every tae_list path, size and digest) is
 * checked, and a malformed value is an `integrity` BrError naming the file and the line.
 * Not: a reader of files (see readVerifiedFile and readBackupSummary in sidecars.ts), nor of mo_br's own `backup_meta`.
 */
import {isSafePath} from '../archive/paths.js'
import {integrityError} from '../errors.js'

export const MO_META = 'mo_meta'
export const TAE_LIST = 'tae/tae_list'
export const TAE_SUM = 'tae/tae_sum'

/** A TAE timestamp as MO prints it: physical nanoseconds, a dash, the logical counter. */
export const TS_PATTERN = /^\d{1,20}-\d{1,10}$/

const RERUN = 'run the online backup again into an empty folder'

export interface MoMeta {
  /** the `buildinfo` line split on `|` into `Key: value` pairs (GoVersion, CommitID, Version…) */
  buildInfo: Record<string, string>
  /** backup format version (MO's `backup.Version`, "0823" in every server seen so far) */
  formatVersion: string
  /** launch config copies under config/, by service type (cn, dn, log, proxy, launch) */
  launchConfigs: Array<{file: string; type: string}>
  /** lines of a type this parser does not know, kept as they were */
  other: string[][]
}

export function parseMoMeta(text: string): MoMeta {
  const meta: MoMeta = {buildInfo: {}, formatVersion: '', launchConfigs: [], other: []}
  for (const [index, fields] of parseCsv(text, MO_META).entries()) {
    const [type = '', subType = '', file = ''] = fields
    switch (type) {
      case 'buildinfo': {
        for (const part of subType.split('|')) {
          const colon = part.indexOf(':')
          if (colon > 0) meta.buildInfo[part.slice(0, colon).trim()] = part.slice(colon + 1).trim()
        }

        break
      }

      case 'launchconfig': {
        if (!file) throw integrityError(`${MO_META} line ${index + 1}: a launchconfig line without a file name`, RERUN)
        meta.launchConfigs.push({file, type: subType})
        break
      }

      case 'version': {
        meta.formatVersion = subType
        break
      }

      default: {
        meta.other.push(fields)
      }
    }
  }

  if (!meta.formatVersion) throw integrityError(`${MO_META} has no version line: it is not a MatrixOne backup`, RERUN)
  return meta
}

export interface TaeSum {
  /** when the server took the backup, as it printed it (`YYYY-MM-DD hh:mm:ss`, server time) */
  backupTime: string
  /** the backup ts (`<physical>-<logical>`); null from servers that did not write one */
  backupTs: null | string
  /** the sum of the content sizes in tae_list */
  size: number
  /** 'full' or 'incremental' as the server recorded it; '' when the statement had no TYPE */
  type: string
}

export function parseTaeSum(text: string): TaeSum {
  const lines = parseCsv(text, TAE_SUM)
  if (lines.length !== 1) throw integrityError(`${TAE_SUM} has ${lines.length} lines, not 1`, RERUN)
  const [backupTime = '', size = '', backupTs = '', type = ''] = lines[0]
  if (!/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/.test(backupTime)) {
    throw integrityError(`${TAE_SUM}: '${backupTime}' is not a backup time`, RERUN)
  }

  if (backupTs && !TS_PATTERN.test(backupTs))
    throw integrityError(`${TAE_SUM}: '${backupTs}' is not a backup ts`, RERUN)
  return {backupTime, backupTs: backupTs || null, size: parseSize(size, TAE_SUM, 1), type}
}

export interface TaeListEntry {
  /** false: an object an incremental backup left in its base (listed, not in this folder) */
  needCopy: boolean
  /** relative to tae/ */
  path: string
  /** lowercase hex SHA-256 of the content; null when MO recorded none */
  sha256: null | string
  /** the content size (what MO's fileservice reads, not the framed size on disk) */
  size: number
  /** the object's create ts or the backup's start ts; null when absent */
  ts: null | string
}

export function parseTaeList(text: string): TaeListEntry[] {
  const entries: TaeListEntry[] = []
  const seen = new Set<string>()
  for (const [index, fields] of parseCsv(text, TAE_LIST).entries()) {
    const line = index + 1
    const [path = '', size = '', sha256 = '', needCopy = 'true', ts = ''] = fields
    if (!isSafePath(path, {refuseBackslash: true}))
      throw integrityError(`${TAE_LIST} line ${line}: '${path}' is not a path inside tae/`, RERUN)
    if (sha256 && !/^[\da-f]{64}$/i.test(sha256)) {
      throw integrityError(`${TAE_LIST} line ${line}: '${sha256}' is not a SHA-256`, RERUN)
    }

    if (needCopy !== 'true' && needCopy !== 'false') {
      throw integrityError(`${TAE_LIST} line ${line}: needCopy is '${needCopy}', not true or false`, RERUN)
    }

    // the same object may be named by two checkpoints; MO lists it once, we accept a repeat
    if (seen.has(path)) continue
    seen.add(path)
    entries.push({
      needCopy: needCopy === 'true',
      path,
      sha256: sha256 ? sha256.toLowerCase() : null,
      size: parseSize(size, TAE_LIST, line),
      ts: ts || null,
    })
  }

  return entries
}

function parseSize(value: string, file: string, line: number): number {
  if (!/^\d{1,16}$/.test(value)) throw integrityError(`${file} line ${line}: '${value}' is not a size`, RERUN)
  return Number(value)
}

/**
 * RFC 4180 as Go's encoding/csv writes it: fields quoted when they hold a comma, a quote, CR or
 * LF, or begin with a space; a quote inside a quoted field doubled; records end with \n (\r\n
 * accepted). Empty lines are skipped, as Go's reader does.
 */
export function parseCsv(text: string, file = 'csv'): string[][] {
  const records: string[][] = []
  let fields: string[] = []
  let field = ''
  let started = false
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]
    if (ch === '"' && field === '') {
      const quoted = readQuoted(text, i, file)
      field = quoted.value
      i = quoted.end
      started = true
    } else if (ch === ',') {
      fields.push(field)
      field = ''
      started = true
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++
      if (started || field !== '') records.push([...fields, field])
      fields = []
      field = ''
      started = false
    } else {
      field += ch
      started = true
    }
  }

  if (started || field !== '') records.push([...fields, field])
  return records
}

/** The quoted field opening at `start`: its value and the index of its closing quote. */
function readQuoted(text: string, start: number, file: string): {end: number; value: string} {
  let value = ''
  for (let i = start + 1; i < text.length; i++) {
    if (text[i] !== '"') value += text[i]
    else if (text[i + 1] === '"') {
      value += '"'
      i++
    } else {
      const next = text[i + 1]
      if (next !== undefined && next !== ',' && next !== '\n' && next !== '\r') {
        throw integrityError(`${file}: a quote inside a field at offset ${i}`, RERUN)
      }

      return {end: i, value}
    }
  }

  throw integrityError(`${file}: a quoted field is not closed`, RERUN)
}
