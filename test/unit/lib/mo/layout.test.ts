import {describe, expect, it} from 'vitest'

import {classifyOnlineFile, ONLINE_LAYOUT, onlineRestoreSet, restorePath} from '../../../../src/lib/mo/layout.js'
import {parseTaeList} from '../../../../src/lib/mo/meta.js'

describe('layout', () => {
  describe('restorePath', () => {
    it.each([
      // objects, checkpoint and GC metadata go back into the SHARED fileservice
      ['tae/018f7a41-1881-7999-bbd6-858c3d4acc18_00000', 'shared/018f7a41-1881-7999-bbd6-858c3d4acc18_00000'],
      ['tae/018f7a42-05aa-7d11-a3c4-9e2b7f0c5a13_00001', 'shared/018f7a42-05aa-7d11-a3c4-9e2b7f0c5a13_00001'],
      ['tae/ckp/meta_0-0_1715745404915410000-1.ckp', 'shared/ckp/meta_0-0_1715745404915410000-1.ckp'],
      ['tae/gc/gc_0-0_1715745404915410000-1.fgc', 'shared/gc/gc_0-0_1715745404915410000-1.fgc'],
      ['tae/some/deeper/file', 'shared/some/deeper/file'],
      // the HAKeeper watermarks go where a fresh log service looks for them
      ['hakeeper/hk_data', 'local/hk_data'],
    ])('%s → mo-data/%s', (rel, expected) => {
      expect(restorePath(rel)).toBe(expected)
    })

    it.each([
      'tae/tae_list',
      'tae/tae_sum',
      'mo_meta',
      'backup_meta',
      'config/launch.toml_018f7a50-d300-7017-8580-150edf08733e',
      'config/cn.toml_018f7a50-d30c-7ed0-85bc-191e9f1eb753',
      'mo_meta.sha256',
      'tae/tae_list.sha256',
      'hakeeper/hk_data.sha256',
      'tae/018f7a41-1881-7999-bbd6-858c3d4acc18_00000.sha256',
      'hakeeper/other',
      'stray-file',
    ])('%s is not restored', (rel) => {
      expect(restorePath(rel)).toBeNull()
    })

    it.each([
      '',
      '/tae/x',
      'tae/../../etc/passwd',
      'tae//x',
      './mo_meta',
      'tae/x/',
      String.raw`tae\x`,
      'tae/\0x',
      '..',
    ])('refuses %j as a path that could escape', (rel) => {
      expect(() => restorePath(rel)).toThrow(
        expect.objectContaining({code: 'integrity', message: `'${rel}' is not a path inside a backup folder`}),
      )
    })
  })

  describe('classifyOnlineFile', () => {
    it.each([
      ['tae/018f7a41-1881-7999-bbd6-858c3d4acc18_00000', 'data'],
      ['tae/ckp/meta_0-0_1-1.ckp', 'data'],
      ['tae/tae_list', 'tae-metadata'],
      ['tae/tae_sum', 'tae-metadata'],
      ['hakeeper/hk_data', 'hakeeper'],
      ['mo_meta', 'backup-metadata'],
      ['backup_meta', 'backup-metadata'],
      ['config/log.toml_x', 'config'],
      ['tae/tae_sum.sha256', 'sidecar'],
      ['hakeeper/other', 'unknown'],
      ['etl/x', 'unknown'],
    ])('%s is %s', (rel, kind) => {
      expect(classifyOnlineFile(rel)).toBe(kind)
    })
  })

  describe('ONLINE_LAYOUT', () => {
    it('agrees with restorePath for every concrete pattern', () => {
      for (const rule of ONLINE_LAYOUT) {
        const example = rule.pattern.replace('**.sha256', 'mo_meta.sha256').replace('**', 'x/y').replace('*', 'z')
        const expected = rule.restoredTo?.replace('**', 'x/y') ?? null
        expect(restorePath(example), rule.pattern).toBe(expected)
        expect(classifyOnlineFile(example), rule.pattern).toBe(rule.kind)
      }
    })
  })

  describe('onlineRestoreSet', () => {
    it('restores an incremental from its own tae_list: what it copied, what its base holds, and hk_data', () => {
      const digest = 'ab'.repeat(32)
      const taeList = parseTaeList(
        [
          `018f7a41-1881-7999-bbd6-858c3d4acc18_00000,5000,${digest},false,0-0`,
          `018f7a50-0000-7000-8000-000000000000_00000,700,${digest},true,1715754578690660000-1`,
          'ckp/meta_1715754578690660000-1_1715754578690660000-1.ckp,300,,true,1715754578690660000-1',
          '',
        ].join('\n'),
      )
      expect(onlineRestoreSet(taeList)).toEqual([
        {
          inThisBackup: false,
          path: 'tae/018f7a41-1881-7999-bbd6-858c3d4acc18_00000',
          restoredTo: 'shared/018f7a41-1881-7999-bbd6-858c3d4acc18_00000',
        },
        {
          inThisBackup: true,
          path: 'tae/018f7a50-0000-7000-8000-000000000000_00000',
          restoredTo: 'shared/018f7a50-0000-7000-8000-000000000000_00000',
        },
        {
          inThisBackup: true,
          path: 'tae/ckp/meta_1715754578690660000-1_1715754578690660000-1.ckp',
          restoredTo: 'shared/ckp/meta_1715754578690660000-1_1715754578690660000-1.ckp',
        },
        {inThisBackup: true, path: 'hakeeper/hk_data', restoredTo: 'local/hk_data'},
      ])
    })

    it('refuses a tae_list that names its own metadata', () => {
      expect(() => onlineRestoreSet(parseTaeList('tae_sum,1,,true,0-0\n'))).toThrow(
        'tae/tae_list lists tae/tae_sum, which is not a data file',
      )
    })
  })
})
