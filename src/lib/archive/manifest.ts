/**
 * MANIFEST.json: the full file set of one backup, as pure functions (no I/O).
 *
 * Guarantees: `encodeManifest` writes keys in one fixed order, so two manifests with the same
 * content encode to the same bytes (that is how the copy inside an archive is compared with
 * manifest.age); `decodeManifest` accepts only a well-formed manifest (known keys, right types,
 * safe relative paths sorted and unique, every file's bytes in a backup of the chain) and throws
 * an integrity BrError naming the first problem otherwise. The data directory's own entry (`root`)
 * and each entry's `owner` are optional, so that manifests written before they were recorded
 * still read; when present they are complete. It does not check a manifest against
 * files or archives (manifest-check.ts), and path rules live in paths.ts.
 */
import type {FileEntry, FilePart, Manifest, ManifestEntry, Owner, RootEntry} from './types.js'

import {integrityError} from '../errors.js'
import {findEscapingSymlink, isSafePath, symlinkStaysInside} from './paths.js'

/** The format of a manifest without assembled files; one with `parts` is format 2 (manifestFormat). */
export const MANIFEST_FORMAT = 1
export const MANIFEST_FORMATS_READ: ReadonlyArray<Manifest['format']> = [1, 2]

/** 2 when a file is assembled from parts, else 1: a backup without them stays readable by older versions. */
export function manifestFormat(entries: readonly ManifestEntry[]): Manifest['format'] {
  return entries.some((e) => e.type === 'file' && e.parts !== undefined) ? 2 : 1
}

/** The bytes of `e` that its own backup's archive holds: the whole file, or its last part. */
export function ownPiece(e: FileEntry): {sha256: string; size: number} {
  const last = e.parts?.at(-1)
  return last ? {sha256: last.sha256, size: last.size} : {sha256: e.sha256, size: e.size}
}

/** The order of paths in manifests and archives: plain code-unit order, so a parent precedes its children. */
export function comparePaths(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** The manifest as JSON bytes, keys in a fixed order, one entry per line. */
export function encodeManifest(m: Manifest): Buffer {
  return Buffer.from([...manifestPieces(m)].join(''), 'utf8')
}

/**
 * The canonical encoding in pieces: the head, each entry's line, the tail. `encodeManifest` joins
 * them; `matchesEncoding` compares them one at a time with bytes, pausing for the event loop.
 * @yields the next piece of the JSON text
 */
function* manifestPieces(m: Manifest): Generator<string> {
  const head = {
    backupId: m.backupId,
    chain: m.chain,
    createdAt: m.createdAt,
    deleted: m.deleted,
    format: m.format,
    // manifest.age only: the backup.json it belongs to (repo/authenticity.ts); the copy inside the archive has none
    ...(m.record === undefined ? {} : {record: m.record}),
    ...(m.root === undefined ? {} : {root: canonicalRoot(m.root)}),
    type: m.type,
  }
  yield `${JSON.stringify(head).slice(0, -1)},"entries":[`
  for (const [i, e] of m.entries.entries()) yield `${i === 0 ? '\n' : ',\n'}${JSON.stringify(canonicalEntry(e))}`
  yield `${m.entries.length > 0 ? '\n' : ''}]}\n`
}

/**
 * True when `bytes` are exactly the canonical encoding of `m` (what the packer writes): the
 * archive's embedded manifest against manifest.age, compared piece by piece, with `pause` awaited
 * between pieces so a million entries do not block the event loop (unlike decode + encode).
 */
export async function matchesEncoding(
  m: Manifest,
  bytes: Buffer,
  pause: () => Promise<void> | undefined,
): Promise<boolean> {
  let offset = 0
  for (const piece of manifestPieces(m)) {
    const encoded = Buffer.from(piece, 'utf8')
    if (offset + encoded.length > bytes.length || !encoded.equals(bytes.subarray(offset, offset + encoded.length)))
      return false
    offset += encoded.length
    // eslint-disable-next-line no-await-in-loop -- rarely: lets SIGINT in
    await pause()
  }

  return offset === bytes.length
}

/** Parses and validates a manifest; any problem is an integrity error. */
export function decodeManifest(buf: Uint8Array): Manifest {
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString('utf8'))
  } catch (error) {
    throw integrityError(`manifest is not valid JSON: ${(error as Error).message}`)
  }

  const keys = ['backupId', 'chain', 'createdAt', 'deleted', 'entries', 'format', 'type']
  const m = object(value, 'manifest', withOptional(value, keys, 'record', 'root'))
  const format = m.format as Manifest['format']
  if (!MANIFEST_FORMATS_READ.includes(format)) {
    throw integrityError(
      `manifest format ${JSON.stringify(m.format)} is not supported (this version reads ${MANIFEST_FORMATS_READ.join(' and ')})`,
      'use the moctl br version that wrote it, or a newer one',
    )
  }

  const backupId = nonEmptyString(m.backupId, 'manifest backupId')
  const chain = array(m.chain, 'manifest chain').map((id, i) => nonEmptyString(id, `manifest chain[${i}]`))
  if (chain.length === 0 || chain.at(-1) !== backupId) throw bad('manifest chain must end with its own backupId')
  if (new Set(chain).size !== chain.length) throw bad('manifest chain repeats a backup')
  const createdAt = nonEmptyString(m.createdAt, 'manifest createdAt')
  if (Number.isNaN(Date.parse(createdAt))) throw bad(`manifest createdAt ${JSON.stringify(createdAt)} is not a date`)
  if (m.type !== 'full' && m.type !== 'incremental')
    throw bad(`manifest type ${JSON.stringify(m.type)} is not full or incremental`)
  if (m.type === 'full' && chain.length !== 1) throw bad('a full backup manifest must have a chain of one')
  const deleted = array(m.deleted, 'manifest deleted').map((p, i) => safePath(p, `manifest deleted[${i}]`))
  // Each member's place in the chain, looked up once per file and part (a million entries, a long chain).
  const chainIndex = new Map(chain.map((id, i) => [id, i]))
  const entries = array(m.entries, 'manifest entries').map((e, i) => entry(e, i, chainIndex))
  if (manifestFormat(entries) !== format)
    throw bad(`manifest format ${format} does not match its entries (format 2 exactly when a file has parts)`)
  const links = new Map<string, string>()
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]
    if (i > 0 && comparePaths(entries[i - 1].path, e.path) >= 0) {
      throw bad(`manifest entries are not sorted and unique at ${JSON.stringify(e.path)}`)
    }

    if (e.type === 'symlink') links.set(e.path, e.target)
  }

  // Each link stays inside on its own (checked above); together they must too.
  const escaping = findEscapingSymlink(links)
  if (escaping) throw bad(`manifest symlink ${escaping.path}: ${escaping.why}`)

  const record = m.record === undefined ? {} : {record: sha256(m.record, 'manifest record')}
  const root = m.root === undefined ? {} : {root: rootEntry(m.root)}
  return {backupId, chain, createdAt, deleted, entries, format, ...record, ...root, type: m.type}
}

export interface ManifestTotals {
  /** bytes of all files of the full set */
  bytes: number
  dirs: number
  files: number
  /** bytes in this backup's own archive: its files, or their last part (all of them for a full backup) */
  ownBytes: number
  ownFiles: number
  symlinks: number
}

export function manifestTotals(m: Manifest): ManifestTotals {
  const totals: ManifestTotals = {bytes: 0, dirs: 0, files: 0, ownBytes: 0, ownFiles: 0, symlinks: 0}
  for (const e of m.entries) {
    if (e.type === 'dir') totals.dirs++
    else if (e.type === 'symlink') totals.symlinks++
    else {
      totals.files++
      totals.bytes += e.size
      if (e.in === m.backupId) {
        totals.ownFiles++
        totals.ownBytes += ownPiece(e).size
      }
    }
  }

  return totals
}

/**
 * True when both manifests list the same backup and files (their canonical encodings are equal).
 * The record binding is left out: only manifest.age carries it, the archive's copy cannot.
 */
export function sameManifest(a: Manifest, b: Manifest): boolean {
  return encodeManifest({...a, record: undefined}).equals(encodeManifest({...b, record: undefined}))
}

/** Keys in alphabetical order; `owner` only when recorded (older manifests have none). */
function canonicalEntry(e: ManifestEntry): ManifestEntry {
  const owner = e.owner === undefined ? {} : {owner: canonicalOwner(e.owner)}
  switch (e.type) {
    case 'dir': {
      return {mode: e.mode, mtimeMs: e.mtimeMs, ...owner, path: e.path, type: 'dir'}
    }

    case 'file': {
      return {
        in: e.in,
        mode: e.mode,
        mtimeMs: e.mtimeMs,
        ...owner,
        ...(e.parts === undefined ? {} : {parts: e.parts.map((p) => ({in: p.in, sha256: p.sha256, size: p.size}))}),
        path: e.path,
        sha256: e.sha256,
        size: e.size,
        type: 'file',
      }
    }

    case 'symlink': {
      return {mtimeMs: e.mtimeMs, ...owner, path: e.path, target: e.target, type: 'symlink'}
    }
  }
}

function canonicalOwner(o: Owner): Owner {
  return {gid: o.gid, gname: o.gname, uid: o.uid, uname: o.uname}
}

function canonicalRoot(r: RootEntry): RootEntry {
  return {mode: r.mode, mtimeMs: r.mtimeMs, ...(r.owner === undefined ? {} : {owner: canonicalOwner(r.owner)})}
}

/** `keys`, plus those of `optional` that `value` has. */
function withOptional(value: unknown, keys: string[], ...optional: string[]): string[] {
  if (typeof value !== 'object' || value === null) return keys
  return [...keys, ...optional.filter((k) => k in value)]
}

function entry(value: unknown, i: number, chainIndex: Map<string, number>): ManifestEntry {
  const where = `manifest entries[${i}]`
  const type = (value as null | {type?: unknown})?.type
  switch (type) {
    case 'dir': {
      const e = object(value, where, withOptional(value, ['mode', 'mtimeMs', 'path', 'type'], 'owner'))
      return {
        mode: mode(e.mode, where),
        mtimeMs: time(e.mtimeMs, where),
        ...ownerOf(e, where),
        path: safePath(e.path, where),
        type,
      }
    }

    case 'file': {
      const e = object(
        value,
        where,
        withOptional(value, ['in', 'mode', 'mtimeMs', 'path', 'sha256', 'size', 'type'], 'owner', 'parts'),
      )
      const file: FileEntry = {
        in: nonEmptyString(e.in, `${where}.in`),
        mode: mode(e.mode, where),
        mtimeMs: time(e.mtimeMs, where),
        ...ownerOf(e, where),
        ...(e.parts === undefined ? {} : {parts: parts(e.parts, where)}),
        path: safePath(e.path, where),
        sha256: sha256(e.sha256, where),
        size: size(e.size, where),
        type,
      }
      if (!chainIndex.has(file.in))
        throw bad(`${where} (${file.path}) lives in backup ${file.in}, which is not in the chain`)
      if (file.parts) checkParts(file, file.parts, chainIndex, where)
      return file
    }

    case 'symlink': {
      const e = object(value, where, withOptional(value, ['mtimeMs', 'path', 'target', 'type'], 'owner'))
      const link = {
        mtimeMs: time(e.mtimeMs, where),
        ...ownerOf(e, where),
        path: safePath(e.path, where),
        target: nonEmptyString(e.target, `${where}.target`),
        type,
      }
      if (!symlinkStaysInside(link.path, link.target))
        throw bad(`${where} (${link.path}) is a symlink leading outside the data directory`)
      return link
    }

    default: {
      throw bad(`${where} has type ${JSON.stringify(type)}, not file, dir or symlink`)
    }
  }
}

function parts(value: unknown, where: string): FilePart[] {
  return array(value, `${where}.parts`).map((p, i) => {
    const at = `${where}.parts[${i}]`
    const o = object(p, at, ['in', 'sha256', 'size'])
    return {in: nonEmptyString(o.in, `${at}.in`), sha256: sha256(o.sha256, at), size: size(o.size, at)}
  })
}

/** Two or more parts, each in a backup of the chain later than the one before, none empty, adding up to the file. */
function checkParts(file: FileEntry, list: FilePart[], chainIndex: Map<string, number>, where: string): void {
  const at = `${where} (${file.path})`
  if (list.length < 2) throw bad(`${at} has ${list.length} parts: an assembled file has two or more`)
  let total = 0
  let previous = -1
  for (const part of list) {
    const index = chainIndex.get(part.in)
    if (index === undefined) throw bad(`${at} has a part in backup ${part.in}, which is not in the chain`)
    if (index <= previous) throw bad(`${at} has parts out of the chain's order`)
    if (part.size === 0) throw bad(`${at} has an empty part`)
    previous = index
    total += part.size
  }

  if (total !== file.size) throw bad(`${at} has parts adding up to ${total} bytes, not its size ${file.size}`)
  if (list.at(-1)!.in !== file.in)
    throw bad(`${at} lives in backup ${file.in}, but its last part in ${list.at(-1)!.in}`)
}

function rootEntry(value: unknown): RootEntry {
  const where = 'manifest root'
  const r = object(value, where, withOptional(value, ['mode', 'mtimeMs'], 'owner'))
  return {mode: mode(r.mode, where), mtimeMs: time(r.mtimeMs, where), ...ownerOf(r, where)}
}

/** `{owner}` when the entry records one (complete and well-formed), `{}` when it does not. */
function ownerOf(e: Record<string, unknown>, where: string): {owner?: Owner} {
  if (e.owner === undefined) return {}
  const o = object(e.owner, `${where}.owner`, ['gid', 'gname', 'uid', 'uname'])
  return {
    owner: {
      gid: id(o.gid, `${where}.owner.gid`),
      gname: accountName(o.gname, `${where}.owner.gname`),
      uid: id(o.uid, `${where}.owner.uid`),
      uname: accountName(o.uname, `${where}.owner.uname`),
    },
  }
}

/** A uid or gid: 0 … 2^32 - 2 (2^32 - 1 is the kernel's "no id"). */
function id(value: unknown, where: string): number {
  if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 0xff_ff_ff_fe)
    throw bad(`${where} is not a valid id`)
  return value as number
}

/** A user or group name as /etc/passwd and /etc/group can hold it, or '' for none. */
function accountName(value: unknown, where: string): string {
  if (typeof value !== 'string' || value.length > 256 || /[\0\n:]/.test(value))
    throw bad(`${where} is not a valid name`)
  return value
}

function object(value: unknown, where: string, keys: string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad(`${where} is not an object`)
  const extra = Object.keys(value).filter((k) => !keys.includes(k))
  if (extra.length > 0) throw bad(`${where} has unknown keys: ${extra.join(', ')}`)
  const missing = keys.filter((k) => !(k in value))
  if (missing.length > 0) throw bad(`${where} lacks ${missing.join(', ')}`)
  return value as Record<string, unknown>
}

function array(value: unknown, where: string): unknown[] {
  if (!Array.isArray(value)) throw bad(`${where} is not an array`)
  return value
}

function nonEmptyString(value: unknown, where: string): string {
  if (typeof value !== 'string' || value === '') throw bad(`${where} is not a non-empty string`)
  return value
}

function safePath(value: unknown, where: string): string {
  if (typeof value !== 'string' || !isSafePath(value))
    throw bad(`${where} has an unsafe or empty path ${JSON.stringify(value)}`)
  return value
}

function mode(value: unknown, where: string): number {
  if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 0o7777)
    throw bad(`${where} has an invalid mode`)
  return value as number
}

function time(value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw bad(`${where} has an invalid mtimeMs`)
  return value
}

function size(value: unknown, where: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) throw bad(`${where} has an invalid size`)
  return value as number
}

function sha256(value: unknown, where: string): string {
  if (typeof value !== 'string' || !/^[\da-f]{64}$/.test(value)) throw bad(`${where} has an invalid sha256`)
  return value
}

function bad(message: string) {
  return integrityError(message, 'the manifest is corrupted: use another backup')
}
