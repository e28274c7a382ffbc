/**
 * A local cache of backup manifests (plaintext), so a host that holds only the public recipient
 * key can still plan an incremental: the base's manifest.age cannot be read there.
 *
 * Guarantees: a cached manifest is used only when its SHA-256 equals the one its backup's record
 * promises (manifest.plainSha256), so a stale or tampered cache is ignored, never trusted.
 * Files are mode 0600 (they hold file names). It does not evict old entries.
 */
import {mkdir, readFile, rename, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import type {Manifest} from '../archive/types.js'
import type {BackupRecord} from '../repo/types.js'

import {decodeManifest, encodeManifest} from '../archive/manifest.js'
import {sha256Hex} from '../hash.js'

export class ManifestCache {
  constructor(readonly dir: string) {}

  async get(repoPath: string, record: BackupRecord): Promise<Manifest | undefined> {
    let bytes: Buffer
    try {
      bytes = await readFile(this.file(repoPath, record.id))
    } catch {
      return undefined
    }

    if (!record.manifest.plainSha256 || sha256Hex(bytes) !== record.manifest.plainSha256) return undefined
    return decodeManifest(bytes)
  }

  async put(repoPath: string, manifest: Manifest): Promise<void> {
    const file = this.file(repoPath, manifest.backupId)
    await mkdir(join(file, '..'), {mode: 0o700, recursive: true})
    const temp = `${file}.tmp-${process.pid}`
    await writeFile(temp, encodeManifest(manifest), {mode: 0o600})
    await rename(temp, file)
  }

  private file(repoPath: string, id: string): string {
    return join(this.dir, sha256Hex(Buffer.from(repoPath)).slice(0, 16), `${id}.json`)
  }
}
