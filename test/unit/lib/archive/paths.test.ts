import {describe, expect, it} from 'vitest'

import {isSafePath, symlinkStaysInside} from '../../../../src/lib/archive/paths.js'

describe('paths', () => {
  it('tells safe paths and inside symlinks', () => {
    for (const p of ['a', 'a/b', 'données/x', '.hidden', 'a..b']) expect(isSafePath(p), p).toBe(true)
    for (const p of ['', '/etc/passwd', '../x', 'a/../../x', 'a//b', './a', 'a/.', 'a/', 'a\0b'])
      expect(isSafePath(p), p).toBe(false)
    expect(symlinkStaysInside('a/b/link', '../../x')).toBe(true)
    expect(symlinkStaysInside('a/b/link', '../../../x')).toBe(false)
    expect(symlinkStaysInside('link', '/etc/passwd')).toBe(false)
    expect(symlinkStaysInside('link', '')).toBe(false)
  })

  it('is the one safe-path check: tae_list paths refuse backslashes too, data dir names may hold them', () => {
    for (const p of [String.raw`a\b`, String.raw`dir\..\x`]) {
      // On Linux a backslash is part of a name: a data dir may hold one, and it names nothing else.
      expect(isSafePath(p), p).toBe(true)
      expect(isSafePath(p, {refuseBackslash: true}), p).toBe(false)
    }

    for (const p of ['', '/etc/passwd', '../x', 'a//b', 'a\0b'])
      expect(isSafePath(p, {refuseBackslash: true}), p).toBe(false)
    expect(isSafePath('tae/ckp/meta_1_2.ckp', {refuseBackslash: true})).toBe(true)
  })
})
