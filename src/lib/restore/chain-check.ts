/**
 * A chain's manifests against one another, and an assembled file against its manifest: the checks
 * restore/chain.ts makes before it reads a chain's archives, and after.
 *
 * Guarantees: every file of the final manifest comes from a member whose own manifest lists it with
 * the same content (size, SHA-256, the backup that holds it, its parts); each part of a file
 * assembled from parts comes from the member that holds it, whose manifest lists the file as the
 * parts up to that one (the first part: the file whole); an assembled file under a restore's
 * destination, or hashed part after part while verify read the chain oldest first, hashes to its
 * whole SHA-256. Each failure is an integrity error naming the backup and the path. It does not
 * read archives (read.ts, with manifest-check.ts, checks each archive against its own manifest).
 */
import {createHash, type Hash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {join} from 'node:path'
import {pipeline} from 'node:stream/promises'

import type {FileEntry, Manifest} from '../archive/types.js'

import {integrityError} from '../errors.js'

const HINT_INCONSISTENT = 'the chain is inconsistent: restore another backup'

/**
 * A hash for each file of `finalManifest` assembled from parts, and for each member the paths
 * whose part it holds: verify (which reads the chain oldest first) hashes each part into its
 * file's as it passes (read.ts `assemble`).
 */
export function assemblingHashes(finalManifest: Manifest): {
  byMember: Map<string, Map<string, Hash>>
  byPath: Map<string, Hash>
} {
  const byMember = new Map<string, Map<string, Hash>>()
  const byPath = new Map<string, Hash>()
  for (const e of finalManifest.entries) {
    if (e.type !== 'file' || !e.parts) continue
    const hash = createHash('sha256')
    byPath.set(e.path, hash)
    for (const part of e.parts) {
      let paths = byMember.get(part.in)
      if (!paths) byMember.set(part.in, (paths = new Map()))
      paths.set(e.path, hash)
    }
  }

  return {byMember, byPath}
}

/** Each assembled file, hashed part after part as the chain was read, against its whole SHA-256. */
export function checkAssembledHashes(finalManifest: Manifest, byPath: Map<string, Hash>): void {
  for (const e of finalManifest.entries) {
    if (e.type !== 'file' || !e.parts) continue
    if (byPath.get(e.path)?.digest('hex') !== e.sha256) throw notAssembled(finalManifest, e)
  }
}

const notAssembled = (m: Manifest, e: FileEntry) =>
  integrityError(
    `backup ${m.backupId}: ${e.path}, assembled from its ${e.parts?.length} parts, does not match its SHA-256`,
    HINT_INCONSISTENT,
  )

/** The files assembled from parts under `dest`, each hashed whole against the final manifest. */
export async function checkAssembled(dest: string, finalManifest: Manifest, signal?: AbortSignal): Promise<void> {
  for (const e of finalManifest.entries) {
    if (e.type !== 'file' || !e.parts) continue
    const hash = createHash('sha256')
    // eslint-disable-next-line no-await-in-loop -- one file at a time; assembled files are few
    await pipeline(createReadStream(join(dest, ...e.path.split('/')), {highWaterMark: 1024 * 1024, signal}), hash)
    if (hash.digest('hex') !== e.sha256) throw notAssembled(finalManifest, e)
  }
}

/**
 * Every file's bytes come from a member whose own manifest has the same content for that path;
 * each part of an assembled file, from the member that holds it, whose manifest lists the file
 * as the parts up to that one.
 */
export function checkFinalManifest(finalManifest: Manifest, manifests: Map<string, Manifest>): void {
  const byMember = new Map<string, Map<string, FileEntry>>()
  for (const [id, m] of manifests) {
    byMember.set(id, new Map(m.entries.filter((e): e is FileEntry => e.type === 'file').map((e) => [e.path, e])))
  }

  for (const e of finalManifest.entries) {
    if (e.type !== 'file') continue
    const files = byMember.get(e.in)
    if (!files) {
      throw integrityError(
        `backup ${finalManifest.backupId}: ${e.path} lives in backup ${e.in}, which was not read`,
        HINT_INCONSISTENT,
      )
    }

    const there = files.get(e.path)
    if (!there || there.sha256 !== e.sha256 || there.size !== e.size || there.in !== e.in || !sameParts(there, e)) {
      throw integrityError(
        `backup ${finalManifest.backupId}: ${e.path} is not in backup ${e.in} as its manifest says`,
        HINT_INCONSISTENT,
      )
    }

    // The earlier parts: their member held the file as the parts up to theirs (the first, whole).
    let size = 0
    for (const [i, part] of (e.parts ?? []).slice(0, -1).entries()) {
      size += part.size
      const held = byMember.get(part.in)?.get(e.path)
      const upTo = e.parts!.slice(0, i + 1)
      const same =
        held !== undefined &&
        held.in === part.in &&
        held.size === size &&
        (i === 0 ? !held.parts && held.sha256 === part.sha256 : sameParts(held, {parts: upTo}))
      if (!same) {
        throw integrityError(
          `backup ${finalManifest.backupId}: part ${i + 1} of ${e.path} is not in backup ${part.in} as its manifest says`,
          HINT_INCONSISTENT,
        )
      }
    }
  }
}

function sameParts(a: Pick<FileEntry, 'parts'>, b: Pick<FileEntry, 'parts'>): boolean {
  if (!a.parts || !b.parts) return a.parts === b.parts
  return (
    a.parts.length === b.parts.length &&
    a.parts.every((p, i) => p.in === b.parts![i].in && p.sha256 === b.parts![i].sha256 && p.size === b.parts![i].size)
  )
}
