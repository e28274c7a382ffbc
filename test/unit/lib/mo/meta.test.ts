import {describe, expect, it} from 'vitest'

import {parseCsv, parseMoMeta, parseTaeList, parseTaeSum} from '../../../../src/lib/mo/meta.js'

// Shaped like pkg/backup's output: Metas.CsvString through encoding/csv (version, buildinfo,
// launchconfig lines, each with three fields).
const MO_META = [
  'version,0823,',
  'buildinfo,GoVersion: go1.22.3|BranchName: HEAD|CommitID: 1a2b3c4|BuildTime: 20240515-115000|Version: v1.2.0,',
  'launchconfig,launch,launch.toml_018f7a50-d300-7017-8580-150edf08733e',
  'launchconfig,log,log.toml_018f7a50-d30c-7ed0-85bc-191e9f1eb753',
  '',
].join('\n')

describe('meta', () => {
  describe('parseMoMeta', () => {
    it('reads the format version, the build info and the launch config copies', () => {
      expect(parseMoMeta(MO_META)).toEqual({
        buildInfo: {
          BranchName: 'HEAD',
          BuildTime: '20240515-115000',
          CommitID: '1a2b3c4',
          GoVersion: 'go1.22.3',
          Version: 'v1.2.0',
        },
        formatVersion: '0823',
        launchConfigs: [
          {file: 'launch.toml_018f7a50-d300-7017-8580-150edf08733e', type: 'launch'},
          {file: 'log.toml_018f7a50-d30c-7ed0-85bc-191e9f1eb753', type: 'log'},
        ],
        other: [],
      })
    })

    it('keeps lines of unknown types aside', () => {
      expect(parseMoMeta(`${MO_META}tae,,tae\n`).other).toEqual([['tae', '', 'tae']])
    })

    it('refuses a file without a version line', () => {
      expect(() => parseMoMeta('buildinfo,x,\n')).toThrow('mo_meta has no version line: it is not a MatrixOne backup')
    })
  })

  describe('parseTaeSum', () => {
    it('reads time, size, backup ts and type', () => {
      expect(parseTaeSum('2024-05-15 11:56:44,68157440,1715745404915410000-1,full\n')).toEqual({
        backupTime: '2024-05-15 11:56:44',
        backupTs: '1715745404915410000-1',
        size: 68_157_440,
        type: 'full',
      })
    })

    it('reads the two fields of servers from before incremental backups', () => {
      expect(parseTaeSum('2023-08-23 10:00:00,1024\n')).toEqual({
        backupTime: '2023-08-23 10:00:00',
        backupTs: null,
        size: 1024,
        type: '',
      })
    })

    it('refuses what is not a tae_sum', () => {
      expect(() => parseTaeSum('')).toThrow('tae/tae_sum has 0 lines, not 1')
      expect(() => parseTaeSum('yesterday,1,1-1,full\n')).toThrow("tae/tae_sum: 'yesterday' is not a backup time")
      expect(() => parseTaeSum('2024-05-15 11:56:44,1,17157454049,full\n')).toThrow(
        "tae/tae_sum: '17157454049' is not a backup ts",
      )
      expect(() => parseTaeSum('2024-05-15 11:56:44,-1,1-1,full\n')).toThrow("tae/tae_sum line 1: '-1' is not a size")
    })
  })

  describe('parseTaeList', () => {
    const digest = 'AB'.repeat(32)

    it('reads path, size, digest, needCopy and ts; empty digest and repeats are allowed', () => {
      const text = [
        `018f7a41-1881-7999-bbd6-858c3d4acc18_00000,5000,${digest},true,1715745404915410000-1`,
        'ckp/meta_1715745404915410000-1_1715745404915410000-1.ckp,300,,true,1715745404915410000-1',
        `018f7a41-1881-7999-bbd6-858c3d4acc18_00000,5000,${digest},true,1715745404915410000-1`,
        `018f0000-0000-7000-8000-000000000000_00000,4096,${digest},false,0-0`,
        // the three fields of a 2023 server
        'gc/gc_0-0_1-1.fgc,90,',
        '',
      ].join('\n')
      expect(parseTaeList(text)).toEqual([
        {
          needCopy: true,
          path: '018f7a41-1881-7999-bbd6-858c3d4acc18_00000',
          sha256: digest.toLowerCase(),
          size: 5000,
          ts: '1715745404915410000-1',
        },
        {
          needCopy: true,
          path: 'ckp/meta_1715745404915410000-1_1715745404915410000-1.ckp',
          sha256: null,
          size: 300,
          ts: '1715745404915410000-1',
        },
        {
          needCopy: false,
          path: '018f0000-0000-7000-8000-000000000000_00000',
          sha256: digest.toLowerCase(),
          size: 4096,
          ts: '0-0',
        },
        {needCopy: true, path: 'gc/gc_0-0_1-1.fgc', sha256: null, size: 90, ts: null},
      ])
    })

    it('refuses paths that leave tae/, bad digests and bad flags, naming the line', () => {
      expect(() => parseTaeList(`a,1,${digest},true,0-0\n../x,1,,true,0-0\n`)).toThrow(
        "tae/tae_list line 2: '../x' is not a path inside tae/",
      )
      expect(() => parseTaeList('/etc/passwd,1,,true,0-0\n')).toThrow("'/etc/passwd' is not a path inside tae/")
      expect(() => parseTaeList('a,1,abc,true,0-0\n')).toThrow("tae/tae_list line 1: 'abc' is not a SHA-256")
      expect(() => parseTaeList('a,1,,yes,0-0\n')).toThrow("tae/tae_list line 1: needCopy is 'yes', not true or false")
      expect(() => parseTaeList('a,big,,true,0-0\n')).toThrow("tae/tae_list line 1: 'big' is not a size")
    })
  })

  describe('parseCsv', () => {
    it("reads what Go's encoding/csv writes", () => {
      // quoted because of a comma, a quote, a newline, a leading space; \r\n accepted; blank lines skipped
      const text = 'a,"b,c","say ""hi""","two\nlines"," lead"\r\n\nlast,,\n'
      expect(parseCsv(text)).toEqual([
        ['a', 'b,c', 'say "hi"', 'two\nlines', ' lead'],
        ['last', '', ''],
      ])
      expect(parseCsv('no newline at end')).toEqual([['no newline at end']])
    })

    it('refuses a quote that does not close', () => {
      expect(() => parseCsv('"open,\n', 'x')).toThrow('x: a quoted field is not closed')
      expect(() => parseCsv('"a"b,c\n', 'x')).toThrow('x: a quote inside a field at offset 2')
    })
  })
})
