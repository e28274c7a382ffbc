import {describe, expect, it} from 'vitest'

import type {FileEntry, Manifest} from '../../../../src/lib/archive/types.js'

import {
  comparePaths,
  decodeManifest,
  encodeManifest,
  manifestFormat,
  manifestTotals,
  ownPiece,
  sameManifest,
} from '../../../../src/lib/archive/manifest.js'
import {BrError} from '../../../../src/lib/errors.js'

const SHA = 'a'.repeat(64)
const base = (): Manifest => ({
  backupId: 'b2',
  chain: ['b1', 'b2'],
  createdAt: '2026-11-25T04:00:00.000Z',
  deleted: ['gone.txt'],
  entries: [
    {mode: 0o755, mtimeMs: 1.5, path: 'a', type: 'dir'},
    {in: 'b1', mode: 0o644, mtimeMs: 1_700_000_000_123.456, path: 'a-b', sha256: SHA, size: 10, type: 'file'},
    {in: 'b2', mode: 0o600, mtimeMs: 2, path: 'a/x', sha256: 'b'.repeat(64), size: 0, type: 'file'},
    {mtimeMs: 3, path: 'a/link', target: '../a-b', type: 'symlink'},
  ].sort((x, y) => comparePaths(x.path, y.path)) as Manifest['entries'],
  format: 1,
  type: 'incremental',
})

/** base(), with a file of 1000 bytes assembled from b1's 600 and b2's 400 appended to them. */
const withParts = (): Manifest => {
  const m = base()
  const wal: FileEntry = {
    in: 'b2',
    mode: 0o644,
    mtimeMs: 4,
    parts: [
      {in: 'b1', sha256: 'c'.repeat(64), size: 600},
      {in: 'b2', sha256: 'd'.repeat(64), size: 400},
    ],
    path: 'wal',
    sha256: 'e'.repeat(64),
    size: 1000,
    type: 'file',
  }
  return {...m, entries: [...m.entries, wal].sort((x, y) => comparePaths(x.path, y.path)), format: 2}
}

function decodeError(json: unknown): BrError {
  try {
    decodeManifest(Buffer.from(typeof json === 'string' ? json : JSON.stringify(json)))
  } catch (error) {
    expect(error).toBeInstanceOf(BrError)
    expect((error as BrError).code).toBe('integrity')
    return error as BrError
  }

  throw new Error('decodeManifest accepted it')
}

describe('manifest', () => {
  it('round-trips, byte for byte and value for value', () => {
    const m = base()
    const bytes = encodeManifest(m)
    const back = decodeManifest(bytes)
    expect(back).toEqual(m)
    expect(encodeManifest(back).equals(bytes)).toBe(true)
    expect(back.entries[1]).toMatchObject({mtimeMs: 1_700_000_000_123.456})
  })

  it('encodes the same content to the same bytes whatever the key order', () => {
    const m = base()
    const shuffled = JSON.parse(JSON.stringify(m, Object.keys(m).reverse())) as Manifest
    shuffled.entries = m.entries.map(
      (e) => Object.fromEntries(Object.entries(e).reverse()) as Manifest['entries'][number],
    )
    expect(sameManifest(m, shuffled)).toBe(true)
    expect(sameManifest(m, {...m, deleted: []})).toBe(false)
  })

  it('sorts by code unit, so a parent precedes its children', () => {
    expect(['a/x', 'a-b', 'a', 'B', 'é'].sort(comparePaths)).toEqual(['B', 'a', 'a-b', 'a/x', 'é'])
  })

  it('counts totals, and the bytes that live in this backup', () => {
    expect(manifestTotals(base())).toEqual({bytes: 10, dirs: 1, files: 2, ownBytes: 0, ownFiles: 1, symlinks: 1})
  })

  it("format 2: a file assembled from parts round-trips, and counts its last part as this backup's bytes", () => {
    const m = withParts()
    expect(manifestFormat(m.entries)).toBe(2)
    const bytes = encodeManifest(m)
    const back = decodeManifest(bytes)
    expect(back).toEqual(m)
    expect(encodeManifest(back).equals(bytes)).toBe(true)
    expect(manifestTotals(m)).toMatchObject({bytes: 10 + 1000, ownBytes: 400, ownFiles: 2})
    expect(ownPiece(m.entries.find((e) => e.path === 'wal')! as FileEntry)).toEqual({sha256: 'd'.repeat(64), size: 400})
  })

  it('refuses parts that cannot make the file, naming the problem', () => {
    const m = JSON.parse(encodeManifest(withParts()).toString()) as Record<string, unknown> & {
      entries: Array<Record<string, unknown> & {parts?: Array<Record<string, unknown>>}>
    }
    const wal = m.entries.findIndex((e) => e.path === 'wal')
    const edit = (f: (parts: Array<Record<string, unknown>>, entry: Record<string, unknown>) => void) => {
      const copy = structuredClone(m)
      f(copy.entries[wal].parts!, copy.entries[wal])
      return copy
    }

    type Change = (parts: Array<Record<string, unknown>>, entry: Record<string, unknown>) => void
    const cases: Array<[Change, RegExp]> = [
      [(p) => p.splice(0, 1), /\(wal\) has 1 parts: an assembled file has two or more/],
      [
        (p) => {
          p[0].size = 599
        },
        /\(wal\) has parts adding up to 999 bytes, not its size 1000/,
      ],
      [
        (p) => {
          p[0].in = 'b9'
        },
        /\(wal\) has a part in backup b9, which is not in the chain/,
      ],
      [(p) => p.reverse(), /\(wal\) has parts out of the chain's order/],
      [
        (p) => {
          p[1].in = 'b1'
        },
        /\(wal\) has parts out of the chain's order/,
      ],
      [
        (_p, e) => {
          e.in = 'b1'
        },
        /\(wal\) lives in backup b1, but its last part in b2/,
      ],
      [
        (p) => {
          p[0].size = 0
          p[1].size = 1000
        },
        /\(wal\) has an empty part/,
      ],
      [
        (p) => {
          p[1].extra = 1
        },
        /parts\[1\] has unknown keys: extra/,
      ],
      [
        (p) => {
          p[1].sha256 = 'x'
        },
        /parts\[1\] has an invalid sha256/,
      ],
    ]
    for (const [change, message] of cases) expect(decodeError(edit(change)).message).toMatch(message)
    // Parts in a format 1 manifest: an older writer never made them, a newer one says format 2.
    expect(decodeError({...m, format: 1}).message).toMatch(/manifest format 1 does not match its entries/)
  })

  it('refuses what is not a well-formed manifest, naming the problem', () => {
    const m = JSON.parse(encodeManifest(base()).toString()) as Record<string, unknown> & {
      entries: Record<string, unknown>[]
    }
    const edit = (f: (x: typeof m) => void) => {
      const copy = structuredClone(m)
      f(copy)
      return copy
    }

    expect(decodeError('{"format":1,').message).toMatch(/not valid JSON/)
    expect(decodeError([]).message).toMatch(/manifest is not an object/)
    expect(
      decodeError(
        edit((x) => {
          x.format = 3
        }),
      ).message,
    ).toMatch(/manifest format 3 is not supported \(this version reads 1 and 2\)/)
    expect(
      decodeError(
        edit((x) => {
          x.format = 3
        }),
      ).suggestions,
    ).toEqual(['use the moctl br version that wrote it, or a newer one'])
    expect(
      decodeError(
        edit((x) => {
          x.format = 2
        }),
      ).message,
    ).toMatch(/manifest format 2 does not match its entries/)
    expect(
      decodeError(
        edit((x) => {
          x.extra = true
        }),
      ).message,
    ).toMatch(/unknown keys: extra/)
    expect(decodeError(edit((x) => delete x.deleted)).message).toMatch(/lacks deleted/)
    expect(
      decodeError(
        edit((x) => {
          x.chain = ['b2', 'b1']
        }),
      ).message,
    ).toMatch(/chain must end with its own backupId/)
    expect(
      decodeError(
        edit((x) => {
          x.type = 'full'
        }),
      ).message,
    ).toMatch(/full backup manifest must have a chain of one/)
    expect(
      decodeError(
        edit((x) => {
          x.createdAt = 'yesterday'
        }),
      ).message,
    ).toMatch(/not a date/)
    expect(
      decodeError(
        edit((x) => {
          x.deleted = ['../etc']
        }),
      ).message,
    ).toMatch(/unsafe/)
    expect(decodeError(edit((x) => x.entries.reverse())).message).toMatch(/not sorted and unique/)
    expect(decodeError(edit((x) => x.entries.push(x.entries.at(-1)!))).message).toMatch(/not sorted and unique/)
    expect(
      decodeError(
        edit((x) => {
          x.entries[1].sha256 = 'XYZ'
        }),
      ).message,
    ).toMatch(/entries\[1] has an invalid sha256/)
    expect(
      decodeError(
        edit((x) => {
          x.entries[1].size = -1
        }),
      ).message,
    ).toMatch(/invalid size/)
    expect(
      decodeError(
        edit((x) => {
          x.entries[1].in = 'b0'
        }),
      ).message,
    ).toMatch(/backup b0, which is not in the chain/)
    expect(
      decodeError(
        edit((x) => {
          x.entries[0].mode = 0o1_0000
        }),
      ).message,
    ).toMatch(/invalid mode/)
    expect(
      decodeError(
        edit((x) => {
          x.entries[0].type = 'fifo'
        }),
      ).message,
    ).toMatch(/type "fifo"/)
    expect(
      decodeError(
        edit((x) => {
          x.entries[0].path = '/abs'
        }),
      ).message,
    ).toMatch(/unsafe/)
    const link = m.entries.findIndex((e) => e.type === 'symlink')
    expect(
      decodeError(
        edit((x) => {
          x.entries[link].target = '../../../etc'
        }),
      ).message,
    ).toMatch(/symlink leading outside/)
  })

  describe('owners and the data directory itself', () => {
    const mo = {gid: 999, gname: 'mo', uid: 998, uname: 'mo'}
    const withOwners = (): Manifest => ({
      ...base(),
      entries: base().entries.map((e, i) => ({...e, owner: i === 0 ? {...mo, gname: '', uid: 300_000} : mo})),
      root: {mode: 0o755, mtimeMs: 5.25, owner: mo},
    })

    it('round-trips owners and the root, in one canonical order', () => {
      const m = withOwners()
      const bytes = encodeManifest(m)
      expect(decodeManifest(bytes)).toEqual(m)
      expect(bytes.toString()).toContain(
        '"format":1,"root":{"mode":493,"mtimeMs":5.25,"owner":{"gid":999,"gname":"mo","uid":998,"uname":"mo"}},"type":"incremental"',
      )
      expect(bytes.toString()).toContain(
        '{"mode":493,"mtimeMs":1.5,"owner":{"gid":999,"gname":"","uid":300000,"uname":"mo"},"path":"a","type":"dir"}',
      )
      // Whatever the order of keys inside the owner, the same bytes.
      const shuffled = {
        ...m,
        entries: m.entries.map((e) => ({...e, owner: Object.fromEntries(Object.entries(e.owner!).reverse())})),
      } as Manifest
      expect(encodeManifest(shuffled).equals(bytes)).toBe(true)
    })

    it('still reads a manifest written before owners were recorded, to the same bytes', () => {
      // base() is the shape earlier versions wrote: no root, no owner.
      const old = encodeManifest(base())
      expect(old.toString()).not.toMatch(/owner|root/)
      const back = decodeManifest(old)
      expect(back.root).toBeUndefined()
      expect(back.entries.every((e) => e.owner === undefined)).toBe(true)
      expect(encodeManifest(back).equals(old)).toBe(true)
    })

    it('refuses an incomplete or malformed owner or root', () => {
      const m = JSON.parse(encodeManifest(withOwners()).toString()) as Record<string, unknown> & {
        entries: Array<Record<string, unknown> & {owner: Record<string, unknown>}>
        root: Record<string, unknown> & {owner: Record<string, unknown>}
      }
      const edit = (f: (x: typeof m) => void) => {
        const copy = structuredClone(m)
        f(copy)
        return copy
      }

      expect(decodeError(edit((x) => delete x.entries[1].owner.gname)).message).toBe(
        'manifest entries[1].owner lacks gname',
      )
      expect(
        decodeError(
          edit((x) => {
            x.entries[1].owner.shell = '/bin/sh'
          }),
        ).message,
      ).toMatch(/entries\[1]\.owner has unknown keys: shell/)
      for (const uid of [-1, 1.5, 2 ** 32 - 1, '0']) {
        expect(
          decodeError(
            edit((x) => {
              x.entries[2].owner.uid = uid
            }),
          ).message,
        ).toBe('manifest entries[2].owner.uid is not a valid id')
      }

      for (const uname of ['a:b', 'a\nb', 7]) {
        expect(
          decodeError(
            edit((x) => {
              x.entries[3].owner.uname = uname
            }),
          ).message,
        ).toBe('manifest entries[3].owner.uname is not a valid name')
      }

      expect(
        decodeError(
          edit((x) => {
            x.entries[0].owner = null as unknown as Record<string, unknown>
          }),
        ).message,
      ).toMatch(/entries\[0]\.owner is not an object/)
      expect(decodeError(edit((x) => delete x.root.mtimeMs)).message).toBe('manifest root lacks mtimeMs')
      expect(
        decodeError(
          edit((x) => {
            x.root.path = ''
          }),
        ).message,
      ).toBe('manifest root has unknown keys: path')
      expect(
        decodeError(
          edit((x) => {
            x.root.owner.gid = 2 ** 32
          }),
        ).message,
      ).toBe('manifest root.owner.gid is not a valid id')
    })
  })
})
