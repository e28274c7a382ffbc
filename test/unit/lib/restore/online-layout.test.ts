/**
 * layOutOnline: an online backup's files moved into mo-data's layout, and the directories it
 * makes owned as the restored BACKUP folder was (MO runs as its own user and writes there).
 */
import {chown, lstat, mkdir, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import type {Manifest} from '../../../../src/lib/archive/types.js'

import {layOutOnline} from '../../../../src/lib/restore/online-layout.js'
import {tempDir} from '../../../helpers/cli.js'

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
        entries: ['hakeeper/hk_data', 'mo_meta', 'tae/ckp/meta_1', 'tae/obj_1'].map((p) => file(p)),
        format: 1,
        type: 'full',
      } as Manifest
      const dest = join(tmp.path, 'mo-data')
      const result = await layOutOnline(raw, dest, manifest)
      expect(result).toEqual({moved: 3, skipped: 1})
      for (const dir of ['', 'shared', 'shared/ckp', 'local']) {
        const info = await lstat(join(dest, dir))
        expect([dir, info.uid, info.gid, info.mode & 0o777]).toEqual([dir, 65_534, 65_534, 0o755])
      }

      expect(await readFile(join(dest, 'shared', 'ckp', 'meta_1'), 'utf8')).toBe('tae/ckp/meta_1')
      expect(await readFile(join(dest, 'local', 'hk_data'), 'utf8')).toBe('hakeeper/hk_data')
    },
  )
})
