import {mkdir, symlink, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {overlap, realPath} from '../../../src/lib/path-overlap.js'
import {tempDir} from '../../helpers/cli.js'

let tmp: {cleanup: () => Promise<void>; path: string}
beforeEach(async () => {
  tmp = await tempDir()
})
afterEach(async () => tmp.cleanup())

describe('overlap', () => {
  it('tells same, inside, contains and apart', async () => {
    const data = join(tmp.path, 'mo-data')
    await mkdir(data)
    expect(await overlap(data, `${data}/`)).toBe('same')
    expect(await overlap(join(data, 'repo'), data)).toBe('inside')
    expect(await overlap(tmp.path, data)).toBe('contains')
    expect(await overlap(join(tmp.path, 'mo-data2'), data)).toBeNull()
    expect(await overlap(join(tmp.path, 'repo'), data)).toBeNull()
  })

  it('resolves symlinks, also above a tail that does not exist yet', async () => {
    const data = join(tmp.path, 'real-data')
    await mkdir(data)
    await symlink(data, join(tmp.path, 'link'))
    expect(await realPath(join(tmp.path, 'link', 'a', 'b'))).toBe(join(data, 'a', 'b'))
    expect(await overlap(join(tmp.path, 'link', 'new-repo'), data)).toBe('inside')
    expect(await overlap(data, join(tmp.path, 'link'))).toBe('same')
  })

  it('a file in the path: compared as given, not thrown', async () => {
    await writeFile(join(tmp.path, 'f'), 'x')
    expect(await overlap(join(tmp.path, 'f', 'repo'), join(tmp.path, 'data'))).toBeNull()
  })
})
