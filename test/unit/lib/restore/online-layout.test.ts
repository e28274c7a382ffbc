/**
 * layOutOnline: an online backup's files moved into mo-data's layout, and the directories it
 * makes owned as the restored BACKUP folder was (MO runs as its own user and writes there).
 */
import {createHash} from 'node:crypto'
import {chown, lstat, mkdir, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import type {Manifest} from '../../../../src/lib/archive/types.js'

import {BrError} from '../../../../src/lib/errors.js'
import {frame} from '../../../../src/lib/mo/framing.js'
import {MO_BR_LAYOUT, type TargetLayout} from '../../../../src/lib/mo/layout.js'
import {layOutOnline} from '../../../../src/lib/restore/online-layout.js'
import {tempDir} from '../../../helpers/cli.js'
import {bytesOf, OBJECTS, writeBackupFolder} from '../mo/fixture.js'

let tmp: {cleanup: () => Promise<void>; path: string}
beforeEach(async () => {
  tmp = await tempDir('moctl-br-layout-')
})
afterEach(async () => tmp.cleanup())

const file = (path: string) => ({
  in: 'b',
  mode: 0o640,
  mtimeMs: 0,
  path,
  sha256: '0'.repeat(64),
  size: 1,
  type: 'file' as const,
})

describe('layOutOnline', () => {
  it.runIf(process.geteuid?.() === 0)(
    'gives the layout directories the owner of the BACKUP folder (as root)',
    async () => {
      const raw = join(tmp.path, 'raw')
      for (const p of ['tae/obj_1', 'tae/ckp/meta_1', 'hakeeper/hk_data', 'mo_meta']) {
        await mkdir(join(raw, p, '..'), {recursive: true})
        await writeFile(join(raw, p), p)
      }

      await chown(raw, 65_534, 65_534)
      const manifest = {
        backupId: 'b',
        chain: ['b'],
        createdAt: '2026-12-01T00:00:00.000Z',
        deleted: [],
        entries: [
          ...['hakeeper/hk_data', 'mo_meta', 'tae/ckp/meta_1', 'tae/obj_1'].map((p) => file(p)),
          {...file('hakeeper/hk_data.sha256'), size: 36},
        ],
        format: 1,
        type: 'full',
      } as Manifest
      const dest = join(tmp.path, 'mo-data')
      const result = await layOutOnline(raw, dest, manifest)
      expect(result).toEqual({converted: 0, moved: 3, skipped: 2})
      for (const dir of ['', 'shared', 'shared/ckp', 'local']) {
        const info = await lstat(join(dest, dir))
        expect([dir, info.uid, info.gid, info.mode & 0o777]).toEqual([dir, 65_534, 65_534, 0o755])
      }

      expect(await readFile(join(dest, 'shared', 'ckp', 'meta_1'), 'utf8')).toBe('tae/ckp/meta_1')
      expect(await readFile(join(dest, 'local', 'hk_data'), 'utf8')).toBe('hakeeper/hk_data')
    },
  )

  it('converts DISK -> DISK-V2 checking every CRC: a damaged frame is an integrity error naming the file and block', async () => {
    const raw = join(tmp.path, 'raw-bad-crc')
    const folder = await writeBackupFolder(raw, {framed: true})
    const object = `tae/${OBJECTS[0]}`
    const bytes = await readFile(join(raw, object))
    bytes[2048 + 4 + 10] ^= 0xff // content of the second frame: its CRC no longer holds
    await writeFile(join(raw, object), bytes)
    const error = await layOutOnline(
      raw,
      join(tmp.path, 'out-bad-crc'),
      manifestOf(folder.contents.keys(), SIDECARS, 36),
      {
        layout: V2,
      },
    ).catch((error_: unknown) => error_)
    expect(error).toBeInstanceOf(BrError)
    expect((error as BrError).exitCode).toBe(3)
    expect((error as BrError).message).toBe(
      `${object}: CRC-32C frame 1 (bytes 2048-4095) does not hold: the file is damaged or not DISK-framed`,
    )
  })

  it('checks the converted content against tae_list: a raw file whose bytes changed is an integrity error', async () => {
    const raw = join(tmp.path, 'raw-changed')
    const folder = await writeBackupFolder(raw, {framed: false})
    const object = `tae/${OBJECTS[1]}`
    await writeFile(join(raw, object), Buffer.alloc(2044, 7))
    const error = await layOutOnline(raw, join(tmp.path, 'out-changed'), manifestOf(folder.contents.keys(), SIDECARS), {
      layout: MO_BR_LAYOUT,
    }).catch((error_: unknown) => error_)
    expect((error as BrError).exitCode).toBe(3)
    expect((error as BrError).message).toMatch(
      new RegExp(
        `^${object}: content after adding CRC frames is 2044 bytes, sha256 [0-9a-f]{64}; the backup lists 2044 bytes`,
      ),
    )
  })

  it('streams a file of many frames (3 MiB, in 1 MiB reads) into DISK frames, checked against tae_list', async () => {
    const raw = join(tmp.path, 'raw-big')
    await mkdir(join(raw, 'tae'), {recursive: true})
    const content = bytesOf('big', 3 * 1024 * 1024 + 17)
    await writeFile(join(raw, 'tae/obj'), content)
    await writeFile(
      join(raw, 'tae/tae_list'),
      `obj,${content.length},${createHash('sha256').update(content).digest('hex')},true,1-1\n`,
    )
    await writeFile(
      join(raw, 'tae/tae_list.sha256'),
      createHash('sha256')
        .update(await readFile(join(raw, 'tae/tae_list')))
        .digest(),
    )
    const manifest = manifestOf(['tae/obj', 'tae/tae_list'], ['tae/tae_list.sha256'])
    const out = join(tmp.path, 'out-big')
    expect(await layOutOnline(raw, out, manifest, {layout: MO_BR_LAYOUT})).toEqual({converted: 1, moved: 0, skipped: 2})
    // Buffer.equals: vitest's deep equality walks 3 MiB byte by byte
    expect((await readFile(join(out, 'shared/obj'))).equals(frame(content))).toBe(true)
  })
})

const SIDECARS = ['hakeeper/hk_data.sha256', 'tae/tae_list.sha256']
const V2: TargetLayout = {hakeeper: 'local/hk_data', hakeeperFramed: true, shared: 'shared2', sharedFramed: false}

/** A manifest naming the files of a BACKUP folder and their sidecars (32 raw or 36 framed bytes, as on disk). */
function manifestOf(paths: Iterable<string>, sidecars: string[] = [], sidecarSize = 32): Manifest {
  const entries = [...paths].map((p) => file(p))
  return {
    backupId: 'b',
    chain: ['b'],
    createdAt: '2026-12-01T00:00:00.000Z',
    deleted: [],
    entries: [...entries, ...sidecars.map((p) => ({...file(p), size: sidecarSize}))],
    format: 1,
    type: 'full',
  } as Manifest
}
