/** Hashes of every file under a directory (and symlink targets), to compare trees byte for byte. */
import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {lstat, readdir, readlink} from 'node:fs/promises'
import {join} from 'node:path'
import {pipeline} from 'node:stream/promises'

export async function treeHashes(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  async function walk(dir: string, rel: string): Promise<void> {
    for (const name of (await readdir(dir)).sort()) {
      const path = join(dir, name)
      const key = rel ? `${rel}/${name}` : name
      const info = await lstat(path)
      if (info.isDirectory()) {
        out[`${key}/`] = 'dir'
        await walk(path, key)
      } else if (info.isSymbolicLink()) {
        out[key] = `-> ${await readlink(path)}`
      } else {
        const hash = createHash('sha256')
        await pipeline(createReadStream(path), hash)
        out[key] = hash.digest('hex')
      }
    }
  }

  await walk(root, '')
  return out
}
