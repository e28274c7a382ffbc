/**
 * Reading a backup's chain: the full backup and the incrementals up to the one asked for. Verify
 * reads every archive of the chain; restore materialises the target's full file set, reading the
 * archives newest first and writing each file once, from the backup its final manifest names.
 *
 * Guarantees: every member is present and complete before anything is read (exit 3 naming the
 * missing id otherwise); every archive read is checked against its record and its own manifest;
 * every file of the final manifest must match the member manifest that holds its bytes (a file
 * assembled from parts: each part the member that holds it, and the assembled file its whole
 * SHA-256: chain-check.ts); owners (archive/owners.ts: by name then number as root, --chown,
 * untouched otherwise), modes and mtimes end as the final manifest says, the data directory's own
 * included. It does not write outside `dest`, nor remove it on failure (the caller owns the staging
 * directory).
 */
import {performance} from 'node:perf_hooks'

import type {DecryptOptions, Manifest, PackProgress} from '../archive/types.js'
import type {Repository} from '../repo/repository.js'
import type {BackupRecord} from '../repo/types.js'
import type {StepReporter} from '../steps.js'

import {Breather} from '../archive/breather.js'
import {manifestTotals} from '../archive/manifest.js'
import {type Ids, ownerPlan} from '../archive/owners.js'
import {readArchive} from '../archive/read.js'
import {applyTreeMetadata} from '../archive/tree-writer.js'
import {formatBytes, formatDuration} from '../format.js'
import {keysFor, readManifest} from '../repo/catalog.js'
import {assemblingHashes, checkAssembled, checkAssembledHashes, checkFinalManifest} from './chain-check.js'

export interface ReadChainOptions {
  /** restore --chown: every entry gets this owner */
  chown?: Ids
  /** undefined: verify only */
  dest?: string
  /** the target's manifest, already read */
  finalManifest: Manifest
  /** keep setuid, setgid and sticky bits (restore --keep-special-modes) */
  keepSpecialModes?: boolean
  keys: DecryptOptions
  /** oldest first, the target last */
  members: BackupRecord[]
  onProgress?: (p: PackProgress) => void
  /** told once when owners cannot be given back as recorded */
  onWarning?: (message: string) => void
  /** zstd decompression threads (--parallelism); default: the cores here less one, 1-2 (defaultDecompressThreads) */
  parallelism?: number
  repo: Repository
  signal?: AbortSignal
}

/** Reads the chain; returns the target's full file set (count and bytes), every file of it checked. */
export async function readChain(options: ReadChainOptions): Promise<{bytes: number; files: number}> {
  const {finalManifest, members, repo} = options
  const target = members.at(-1)!
  // Built once, in one pass: the paths each member gives (linear in files, at a million too), and
  // those of its paths whose file a newer member creates (an assembled file's earlier parts).
  const fromMember = new Map<string, Set<string>>()
  const intoMember = new Map<string, Set<string>>()
  const add = (map: Map<string, Set<string>>, id: string, path: string) => {
    let paths = map.get(id)
    if (!paths) map.set(id, (paths = new Set()))
    paths.add(path)
  }

  let totalBytes = 0
  let totalFiles = 0
  for (const e of finalManifest.entries) {
    if (e.type !== 'file') continue
    add(fromMember, e.in, e.path)
    for (const part of e.parts ?? []) {
      if (part.in === e.in) continue
      add(fromMember, part.in, e.path)
      add(intoMember, part.in, e.path)
    }

    totalBytes += e.size
    totalFiles++
  }

  // Restore reads the archives it needs newest first (the newest that holds a file's bytes
  // creates it); verify reads every one, oldest first, so that an assembled file's parts pass in
  // order and are hashed whole as they do.
  const toRead = options.dest
    ? [...members].reverse().filter((m) => m.id === target.id || fromMember.has(m.id))
    : members
  // Every manifest first: the chain must agree with itself before a byte is written.
  const manifests = new Map<string, Manifest>([[target.id, finalManifest]])
  for (const record of toRead) {
    // eslint-disable-next-line no-await-in-loop -- a chain's manifests are few
    if (record.id !== target.id) manifests.set(record.id, await readManifest(repo, record, options.keys))
  }

  checkFinalManifest(finalManifest, manifests)
  // Progress counts what is read: every file entry of each archive read, superseded files and
  // earlier parts of an assembled file included (verified, if not written), so never past 100%.
  const progressTotal = {bytes: 0, files: 0}
  for (const record of toRead) {
    const own = manifestTotals(manifests.get(record.id)!)
    progressTotal.bytes += own.ownBytes
    progressTotal.files += own.ownFiles
  }

  const assembling = options.dest ? undefined : assemblingHashes(finalManifest)
  // The symlinks restored so far (newest archive first): each archive's links resolve in this tree.
  const links = new Map<string, string>()
  let bytes = 0
  let files = 0
  for (const record of toRead) {
    const isTarget = record.id === target.id
    const before = {bytes, files}
    // eslint-disable-next-line no-await-in-loop
    const result = await readArchive({
      assemble: assembling?.byMember.get(record.id),
      decrypt: keysFor(record, options.keys),
      dest: options.dest,
      expected: {sha256: record.archive.sha256, size: record.archive.size},
      expectedManifest: manifests.get(record.id),
      input: repo.openObjectStream(record.id, record.archive.file, {signal: options.signal}),
      into: intoMember.get(record.id),
      label: `backup ${record.id}`,
      links,
      only: isTarget ? undefined : (fromMember.get(record.id) ?? new Set()),
      onProgress: (p) =>
        options.onProgress?.({
          bytesDone: before.bytes + p.bytesDone,
          bytesTotal: progressTotal.bytes,
          filesDone: before.files + p.filesDone,
          filesTotal: progressTotal.files,
        }),
      parallelism: options.parallelism,
      signal: options.signal,
    })
    bytes += result.bytes
    files += result.files
  }

  if (assembling) checkAssembledHashes(finalManifest, assembling.byPath)
  if (options.dest) {
    // Each part was checked as it came; the file they make must be the one the backup hashed whole
    // (verify hashed them as they passed, oldest first).
    await checkAssembled(options.dest, finalManifest, options.signal)
    // The one metadata pass of a restore: readArchive writes bytes only, and each file's owner,
    // mode and mtime come from the final manifest, once every archive of the chain is in place.
    await applyTreeMetadata(options.dest, finalManifest, {
      breather: new Breather(options.signal),
      keepSpecialModes: options.keepSpecialModes,
      owners: ownerPlan({chown: options.chown, onWarning: options.onWarning}),
    })
  }

  // The backup's own file set, every file of it checked: not the sum of what the chain's archives held.
  return {bytes: totalBytes, files: totalFiles}
}

/** readChain as a step reports it: progress lines, then what was verified and how long it took. */
export async function readChainReporting(
  options: Omit<ReadChainOptions, 'onProgress'>,
  report: StepReporter,
): Promise<{bytes: number; files: number}> {
  const started = performance.now()
  const result = await readChain({...options, onProgress: (p) => report.progress(p)})
  report.output(
    `${result.files} files, ${formatBytes(result.bytes)} verified in ${formatDuration(performance.now() - started)}`,
  )
  return result
}
