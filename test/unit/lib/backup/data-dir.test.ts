/**
 * backup/data-dir.ts: a data directory that is missing, not a directory or empty is a usage error
 * (exit 2) naming it and --data-dir, decided before anything else runs. The CLI's exit code for
 * such an error is proven once in integration/cli.test.ts.
 */
import {mkdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {checkDataDir} from '../../../../src/lib/backup/data-dir.js'
import {tempDir, type TempDir} from '../../../helpers/cli.js'

let tmp: TempDir
beforeAll(async () => {
  tmp = await tempDir('moctl-br-data-dir-')
})
afterAll(() => tmp?.cleanup())

describe('checkDataDir', () => {
  it('counts the top-level entries of a data dir', async () => {
    const dir = join(tmp.path, 'mo-data')
    await mkdir(join(dir, 'shared'), {recursive: true})
    await writeFile(join(dir, 'hk_data'), 'x')
    expect(await checkDataDir(dir)).toEqual({entries: 2})
  })

  it('a missing one names it and says what --data-dir takes', async () => {
    const dir = join(tmp.path, 'nope')
    await expect(checkDataDir(dir)).rejects.toMatchObject({
      code: 'usage',
      exitCode: 2,
      message: `data directory ${dir} does not exist`,
      suggestions: ['pass --data-dir with the path of mo-data (e.g. /opt/matrixone/mo-data)'],
    })
  })

  it('a file, and an empty directory', async () => {
    const file = join(tmp.path, 'a-file')
    await writeFile(file, 'x')
    await expect(checkDataDir(file)).rejects.toMatchObject({
      code: 'usage',
      message: `data directory ${file} is not a directory`,
    })
    const empty = join(tmp.path, 'empty')
    await mkdir(empty)
    await expect(checkDataDir(empty)).rejects.toMatchObject({
      code: 'usage',
      exitCode: 2,
      message: `data directory ${empty} is empty: nothing to back up`,
      suggestions: ['check --data-dir: it names the mo-data directory itself'],
    })
  })
})
