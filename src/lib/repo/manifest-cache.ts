/**
 * A local cache of backup manifests (plaintext), so a host that holds only the public recipient
 * key can still plan an incremental: the base's manifest.age cannot be read there.
 *
 * Guarantees: a cached manifest is used only when its SHA-256 equals the one its backup's record
 * promises (manifest.plainSha256), so a stale or tampered cache is ignored, never trusted.
 * Files are mode 0600 (they hold file names). Beside each manifest, a small head (chain and
 * type) lets prune and delete check a record's chain against what this host wrote, without
 * reading whole manifests. It does not evict old entries.
 */
import {mkdir, readFile, rename, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import type {Manifest} from '../archive/types.js'
import type {BackupRecord} from './types.js'

import {decodeManifest, encodeManifest} from '../archive/manifest.js'
import {sha256Hex} from '../hash.js'

/** What a record's chain must agree with: the backup's chain and type as its writer made them. */
export interface ManifestHead {
  chain: string[]
  type: 'full' | 'incremental'
}

export class ManifestCache {
  constructor(readonly dir: string) {}

  async get(repoPath: string, record: BackupRecord): Promise<Manifest | undefined> {
    let bytes: Buffer
    try {
      bytes = await readFile(this.file(repoPath, record.id, '.json'))
    } catch {
      return undefined
    }

    if (!record.manifest.plainSha256 || sha256Hex(bytes) !== record.manifest.plainSha256) return undefined
    return decodeManifest(bytes)
  }

  /** The chain and type of a backup this host wrote into that repository, if it kept them. */
  async head(repoPath: string, id: string): Promise<ManifestHead | undefined> {
    try {
      const json = JSON.parse(await readFile(this.file(repoPath, id, '.head.json'), 'utf8')) as Partial<ManifestHead>
      if (!Array.isArray(json.chain) || (json.type !== 'full' && json.type !== 'incremental')) return undefined
      return {chain: json.chain.map(String), type: json.type}
    } catch {
      return undefined
    }
  }

  async put(repoPath: string, manifest: Manifest): Promise<void> {
    const head: ManifestHead = {chain: manifest.chain, type: manifest.type}
    await this.write(this.file(repoPath, manifest.backupId, '.json'), encodeManifest(manifest))
    await this.write(this.file(repoPath, manifest.backupId, '.head.json'), Buffer.from(JSON.stringify(head)))
  }

  private file(repoPath: string, id: string, suffix: string): string {
    return join(this.dir, sha256Hex(Buffer.from(repoPath)).slice(0, 16), `${id}${suffix}`)
  }

  private async write(file: string, bytes: Uint8Array): Promise<void> {
    await mkdir(join(file, '..'), {mode: 0o700, recursive: true})
    const temp = `${file}.tmp-${process.pid}`
    await writeFile(temp, bytes, {mode: 0o600})
    await rename(temp, file)
  }
}
