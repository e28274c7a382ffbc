import {mkdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {BrError, usageError} from '../../../src/lib/errors.js'
import {explainFsError, explainingFsErrors, type KnownPath} from '../../../src/lib/fs-errors.js'
import {runFlow} from '../../../src/lib/steps.js'
import {tempDir} from '../../helpers/cli.js'

let tmp: {cleanup: () => Promise<void>; path: string}
beforeEach(async () => {
  tmp = await tempDir()
})
afterEach(async () => tmp.cleanup())

/** An error as node:fs makes it: code, syscall, path. */
function fsError(code: string, syscall: string, path?: string, dest?: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${syscall} '${path}'`), {code, dest, path, syscall})
}

const repo = '/backups/mo'
const paths: KnownPath[] = [
  {flag: '--path', path: repo, role: 'repository'},
  {flag: '--data-dir', path: '/opt/mo/mo-data', role: 'data directory'},
]

describe('explainFsError', () => {
  it.each([
    ['EACCES', 'usage', `repository ${repo}: permission denied (open ${repo}/lock.json)`, /let the user running moctl/],
    [
      'EPERM',
      'usage',
      `repository ${repo}: permission denied (open ${repo}/lock.json)`,
      /or pass --path with another one/,
    ],
    [
      'EROFS',
      'usage',
      `repository ${repo} is on a read-only filesystem (open ${repo}/lock.json)`,
      /mount it read-write/,
    ],
    [
      'ENOTDIR',
      'usage',
      `repository ${repo}: a part of the path is a file, not a directory (open ${repo}/lock.json)`,
      /check the path/,
    ],
    [
      'EISDIR',
      'usage',
      `repository ${repo}: ${repo}/lock.json is a directory where a file was expected (open ${repo}/lock.json)`,
      /--path must name a file/,
    ],
  ])('%s on a path under the repository: exit %s, one sentence, a hint', async (code, exit, message, hint) => {
    const error = await explainFsError(fsError(code, 'open', `${repo}/lock.json`), {paths})
    expect(error).toBeInstanceOf(BrError)
    expect(error).toMatchObject({code: exit, message})
    expect((error as BrError).suggestions[0]).toMatch(hint)
  })

  it('ENOSPC: exit 1, with what was needed and what is free', async () => {
    const error = await explainFsError(fsError('ENOSPC', 'write'), {
      needed: 3 * 1024 * 1024,
      neededWhat: 'the files to pack, before compression',
      paths,
      writing: {flag: '--path', path: tmp.path, role: 'repository'},
    })
    expect(error).toMatchObject({code: 'error', exitCode: 1})
    expect((error as Error).message).toMatch(
      new RegExp(
        `^no space left on repository ${tmp.path} \\(write\\): needed 3(\\.0)? MiB \\(the files to pack, before compression\\), .+ free$`,
      ),
    )
  })

  it('picks the longest known path, and the destination for a full or read-only one', async () => {
    const more = [...paths, {flag: '--path', path: `${repo}/backups`, role: 'backups folder'}]
    expect(await explainFsError(fsError('EACCES', 'open', `${repo}/backups/x`), {paths: more})).toMatchObject({
      message: `backups folder ${repo}/backups: permission denied (open ${repo}/backups/x)`,
    })
    const copy = fsError('EROFS', 'copyfile', '/opt/mo/mo-data/a', `${repo}/a`)
    expect(await explainFsError(copy, {paths})).toMatchObject({message: expect.stringMatching(/^repository /)})
  })

  it('passes through what it cannot explain: another code, an unknown path, a BrError', async () => {
    const enoent = fsError('ENOENT', 'open', `${repo}/x`)
    expect(await explainFsError(enoent, {paths})).toBe(enoent)
    const elsewhere = fsError('EACCES', 'open', '/etc/shadow')
    expect(await explainFsError(elsewhere, {paths})).toBe(elsewhere)
    const ours = usageError('already explained')
    expect(await explainFsError(ours, {paths})).toBe(ours)
  })

  it("sees through recursive mkdir's ENOENT: a file in the way is ENOTDIR", async () => {
    await writeFile(join(tmp.path, 'file'), 'x')
    const path = join(tmp.path, 'file', 'a', 'b')
    const error = await explainFsError(fsError('ENOENT', 'mkdir', path), {
      paths: [{flag: '--path', path: tmp.path, role: 'repository'}],
    })
    expect(error).toMatchObject({code: 'usage', message: expect.stringContaining('a part of the path is a file')})
  })

  it('an ENOENT from mkdir under a writable parent stays ENOENT', async () => {
    await mkdir(join(tmp.path, 'ok'))
    const error = fsError('ENOENT', 'mkdir', join(tmp.path, 'ok', 'x', 'y'))
    expect(await explainFsError(error, {paths: [{path: tmp.path, role: 'repository'}]})).toBe(error)
  })
})

describe('explainingFsErrors', () => {
  it("explains a step's error with the context of that moment, and the rollback sees the explained one", async () => {
    let seen: unknown
    const flow = explainingFsErrors<{repo: string}>(
      {
        async rollback(_ctx, error) {
          seen = error
        },
        steps: [
          {
            async run(ctx) {
              throw fsError('EROFS', 'open', `${ctx.repo}/x`)
            },
            title: 'write',
          },
        ],
      },
      (ctx) => ({paths: [{flag: '--path', path: ctx.repo, role: 'repository'}]}),
    )
    await expect(runFlow(flow, {repo})).rejects.toMatchObject({code: 'usage', exitCode: 2})
    expect(seen).toBeInstanceOf(BrError)
  })
})
