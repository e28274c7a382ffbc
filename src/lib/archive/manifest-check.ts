/**
 * An archive's entries against its manifest: what read.ts saw in the tar (each file's size and
 * the SHA-256 of its bytes, each link's target, each dir) must be what the manifest places in
 * this archive, no more and no less.
 *
 * Guarantees: every entry the manifest puts in this archive is there with the same type, size,
 * SHA-256 or target (of a file assembled from parts, its last part, as `append/<path>`); an entry
 * whose bytes the manifest places in another backup of the chain is not; nothing else is; the data
 * directory's own entry is there exactly when the manifest has a `root`. Each failure is an
 * integrity error naming the path. It does not parse manifests (manifest.ts) nor compare a chain's
 * manifests with one another (restore/chain-check.ts).
 */
import type {Breather} from './breather.js'
import type {FileEntry, Manifest} from './types.js'

import {integrityError} from '../errors.js'
import {ownPiece} from './manifest.js'
import {DATA_PREFIX} from './pack.js'
import {ROOT_PATH} from './walk.js'

/** What the tar held at a path. */
export type Seen =
  | {
      /** as `append/<path>`: the bytes appended to the file since an earlier backup (manifest `parts`) */
      append?: true
      sha256: string
      size: number
      type: 'file'
    }
  | {target: string; type: 'symlink'}
  | {type: 'dir'}

export const HINT_DAMAGED = 'the stored copy is damaged: use another copy or another backup'
export const HINT_FORGED = 'the archive was not written by moctl br, or was tampered with'

/** Every entry the manifest puts in this archive is here, equal; nothing else is. */
export async function checkAgainstManifest(
  manifest: Manifest,
  seen: Map<string, Seen>,
  breather: Breather,
): Promise<void> {
  const damaged = (message: string) => integrityError(message, HINT_DAMAGED)
  const root = seen.get(ROOT_PATH)
  if (manifest.root && !root) throw damaged(`the data directory's own entry ${DATA_PREFIX} is missing from the archive`)
  if (root && !manifest.root) {
    throw integrityError(
      `the archive has an entry ${DATA_PREFIX} for the data directory, its manifest none`,
      HINT_FORGED,
    )
  }

  seen.delete(ROOT_PATH)
  for (const e of manifest.entries) {
    // eslint-disable-next-line no-await-in-loop -- rarely: lets SIGINT in during a million entries
    await breather.breathe()
    // In a chain, files whose bytes live in an older backup are listed but not here.
    if (e.type === 'file' && e.in !== manifest.backupId) {
      if (seen.has(e.path))
        throw damaged(`${e.path} is in the archive, but its manifest says its bytes are in backup ${e.in}`)
      continue
    }

    const got = seen.get(e.path)
    if (!got) throw damaged(`${e.path} is in the manifest but missing from the archive`)
    if (got.type !== e.type) throw damaged(`${e.path} is a ${got.type} in the archive, a ${e.type} in the manifest`)
    if (e.type === 'file' && got.type === 'file') checkFile(e, got)

    if (e.type === 'symlink' && got.type === 'symlink' && got.target !== e.target) {
      throw damaged(`symlink ${e.path} points to ${got.target} in the archive, ${e.target} in the manifest`)
    }

    seen.delete(e.path)
  }

  const extra = seen.keys().next()
  if (!extra.done) throw integrityError(`${extra.value} is in the archive but not in its manifest`, HINT_FORGED)
}

/** A file as the archive holds it: whole, or (assembled from parts) its last part, as append/<path>. */
function checkFile(e: FileEntry, got: Extract<Seen, {type: 'file'}>): void {
  const own = ownPiece(e)
  if (Boolean(got.append) !== Boolean(e.parts)) {
    throw integrityError(
      e.parts
        ? `${e.path} is whole in the archive, but its manifest says the archive holds the bytes appended to it`
        : `${e.path} is appended bytes in the archive, but its manifest says the archive holds it whole`,
      HINT_DAMAGED,
    )
  }

  const name = e.parts ? `the bytes appended to ${e.path}` : e.path
  if (got.size !== own.size)
    throw integrityError(`${name} is ${got.size} bytes in the archive, ${own.size} in the manifest`, HINT_DAMAGED)
  if (got.sha256 !== own.sha256)
    throw integrityError(`${name} does not match its SHA-256 in the manifest`, HINT_DAMAGED)
}
