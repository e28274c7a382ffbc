/**
 * `br backup --parallelism N` on real files: N compression workers for a cold backup (1: on the
 * main thread), the compressor named in --json, an archive of independent zstd frames that the
 * zstd and tar CLIs read and `br restore` gives back byte for byte, and an N outside 1-64 refused
 * (exit 2) before anything is written.
 */
import {spawnSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {readdir, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {compressorName, zstdImplementation} from '../../src/lib/archive/compress.js'
import {PIECE_BYTES} from '../../src/lib/archive/zstd-pool.js'
import {backupArgs, NO_SQL, restoreArgs} from '../helpers/args.js'
import {runInProcess, tempDir, type TempDir} from '../helpers/cli.js'
import {makeSmallDataDir} from '../helpers/fixtures.js'
import {needs, skipNote} from '../helpers/needs.js'
import {treeHashes} from '../helpers/tree.js'
import {mixedBytes} from '../unit/lib/archive/fixture.js'

const NO_CLI = 'no /usr/bin/zstd or tar: apt-get install -y zstd tar'
const clis = needs(existsSync('/usr/bin/zstd') && existsSync('/usr/bin/tar'), NO_CLI)

let tmp: TempDir
let dataDir: string
/** the archives the backups below wrote (unencrypted: data.tar.zst) */
const archives: string[] = []

beforeAll(async () => {
  tmp = await tempDir()
  dataDir = join(tmp.path, 'mo-data')
  await makeSmallDataDir(dataDir)
  // 9 MiB: five 2 MiB pieces of tar or more, as many frames.
  await writeFile(join(dataDir, 'shared', 'big-object'), mixedBytes(9 * 1024 * 1024))
})

afterAll(async () => {
  await tmp?.cleanup()
})

const withoutCache = (tree: Record<string, string>) =>
  Object.fromEntries(Object.entries(tree).filter(([path]) => !path.startsWith('shared-cache')))

describe('backup --parallelism', () => {
  it.each(['0', '65', '-3'])('refuses --parallelism %s (exit 2) before writing anything', async (n) => {
    const repo = join(tmp.path, `refused-${n}`)
    const r = await runInProcess(backupArgs(repo, dataDir, '--no-encrypt', '--parallelism', n, ...NO_SQL))
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(`--parallelism ${n} is not a whole number from 1 to 64`)
    expect(r.stderr).toContain('is not a whole number from 1 to 64')
    expect(existsSync(repo)).toBe(false)
  })

  it.each([
    ['1', 'on the main thread'],
    ['3', '3 worker threads'],
  ])('--parallelism %s: names the compressor, and br restore gives the files back', async (n, how) => {
    const repo = join(tmp.path, `repo-${n}`)
    const r = await runInProcess(backupArgs(repo, dataDir, '--no-encrypt', '--parallelism', n, '--json', ...NO_SQL))
    expect(r.code, r.stderr).toBe(0)
    const result = JSON.parse(r.stdout) as {compressor: string; id: string}
    expect(result.compressor).toBe(compressorName(undefined, Number(n)))
    if (zstdImplementation() !== 'codec')
      expect(result.compressor).toContain(`, ${how}, ${PIECE_BYTES / 2 ** 20} MiB frames`)

    const [id] = await readdir(join(repo, 'backups'))
    archives.push(join(repo, 'backups', id, 'data.tar.zst'))
    const target = join(tmp.path, `restored-${n}`)
    const restored = await runInProcess(restoreArgs(result.id, repo, target, ...NO_SQL))
    expect(restored.code, restored.stderr).toBe(0)
    expect(await treeHashes(target)).toEqual(withoutCache(await treeHashes(dataDir)))
    expect((await readFile(join(target, 'shared', 'big-object'))).length).toBe(9 * 1024 * 1024)
  })

  it.skipIf(!clis)(
    `writes a frame per piece of the tar, which the zstd and tar CLIs read${skipNote(clis, NO_CLI)}`,
    () => {
      expect(archives).toHaveLength(2)
      for (const archive of archives) {
        const list = spawnSync('/usr/bin/zstd', ['-lv', archive], {encoding: 'utf8'})
        expect(list.status, list.stderr).toBe(0)
        const tarBytes = spawnSync('/usr/bin/zstd', ['-dc', archive], {maxBuffer: 64 * 2 ** 20}).stdout.length
        expect(tarBytes).toBeGreaterThan(9 * 2 ** 20)
        // One frame per piece of the tar: at least five here.
        expect(Number(/# Zstandard Frames: (\d+)/.exec(list.stdout)?.[1])).toBe(Math.ceil(tarBytes / PIECE_BYTES))
        const tar = spawnSync('bash', ['-c', `zstd -dc '${archive}' | tar -tf -`], {encoding: 'utf8'})
        expect(tar.status, tar.stderr).toBe(0)
        expect(tar.stdout.split('\n')).toContain('data/shared/big-object')
      }
    },
  )
})
