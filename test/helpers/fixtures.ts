/**
 * Small data directories made on the spot, shaped like mo-data: object files under shared/, a
 * checkpoint, the WAL, a cache that backups skip. Deterministic: same seed, same bytes.
 */
import {randomBytes} from 'node:crypto'
import {mkdir, symlink, utimes, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

export async function makeSmallDataDir(root: string, options: {seed?: number} = {}): Promise<void> {
  const seed = options.seed ?? 1
  const files: Record<string, Buffer> = {
    'etl/sys/logs/2026/11/25/statement_info/x.csv': Buffer.from('statement,duration\n'.repeat(2000)),
    'local/hk_data': Buffer.from(`hakeeper ${seed}\n`),
    'logservice-data/wal/0000000001.log': Buffer.concat([Buffer.from('WAL'), pseudoRandom(300_000, seed)]),
    'shared/ckp/meta_0-100.ckp': Buffer.from(`checkpoint ${seed}`),
    'shared/empty-object': Buffer.alloc(0),
    'shared/shared-cache-not/keep': Buffer.from('kept: only the top-level cache dir is excluded'),
  }
  for (let i = 0; i < 12; i++) {
    const id = `0193a${seed.toString(16).padStart(3, '0')}-${String(i).padStart(4, '0')}-7000-8000-00000000000${i % 10}_00000`
    files[`shared/${id}`] =
      i % 2 === 0 ? pseudoRandom(70_000 + i * 1000, seed * 100 + i) : Buffer.from(`row ${i}\n`.repeat(20_000))
  }

  files['shared-cache/cached-object'] = Buffer.from('cache: not worth backing up')
  for (const [rel, bytes] of Object.entries(files)) {
    const path = join(root, rel)
    await mkdir(join(path, '..'), {recursive: true})
    await writeFile(path, bytes)
    await utimes(path, 1_764_000_000 + seed, 1_764_000_000 + seed)
  }

  await symlink('ckp/meta_0-100.ckp', join(root, 'shared', 'latest.ckp'))
}

function pseudoRandom(size: number, seed: number): Buffer {
  // Incompressible but reproducible: a counter-mode hash stream would do; randomBytes is not
  // reproducible, so derive from a simple xorshift.
  const out = Buffer.allocUnsafe(size)
  let x = (seed * 2_654_435_761) >>> 0 || 1
  for (let i = 0; i < size; i++) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    out[i] = x & 0xff
  }

  return out
}

export const randomPassphrase = (): string => randomBytes(12).toString('base64url')
