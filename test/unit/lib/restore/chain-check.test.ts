/**
 * chain-check.ts: a chain's manifests against one another (each file, and each part of a file
 * assembled from parts, from the member that holds it, as that member's own manifest lists it),
 * and an assembled file on disk against its whole SHA-256. Manifests built here, as a repository
 * writer could forge them.
 */
import {createHash} from 'node:crypto'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {FileEntry, Manifest} from '../../../../src/lib/archive/types.js'

import {BrError} from '../../../../src/lib/errors.js'
import {checkAssembled, checkFinalManifest} from '../../../../src/lib/restore/chain-check.js'
import {tempDir, type TempDir} from '../../../helpers/cli.js'

const sha = (text: string) => createHash('sha256').update(text).digest('hex')

/** The WAL as three backups held it: 'aaaa' whole in b1, 'bb' appended in b2, 'c' in b3. */
function chain(): Map<string, Manifest> {
  const wal = (id: string, text: string, parts?: FileEntry['parts']): FileEntry => ({
    in: id,
    mode: 0o644,
    mtimeMs: 1,
    // copies: an edit of one member's parts is that member's alone
    ...(parts ? {parts: parts.map((part) => ({...part}))} : {}),
    path: 'wal',
    sha256: sha(text),
    size: text.length,
    type: 'file',
  })
  const p1 = {in: 'b1', sha256: sha('aaaa'), size: 4}
  const p2 = {in: 'b2', sha256: sha('bb'), size: 2}
  const p3 = {in: 'b3', sha256: sha('c'), size: 1}
  const manifest = (id: string, ids: string[], entry: FileEntry): Manifest => ({
    backupId: id,
    chain: ids,
    createdAt: '2026-12-03T00:00:00.000Z',
    deleted: [],
    entries: [entry],
    format: entry.parts ? 2 : 1,
    type: ids.length === 1 ? 'full' : 'incremental',
  })
  return new Map([
    ['b1', manifest('b1', ['b1'], wal('b1', 'aaaa'))],
    ['b2', manifest('b2', ['b1', 'b2'], wal('b2', 'aaaabb', [p1, p2]))],
    ['b3', manifest('b3', ['b1', 'b2', 'b3'], wal('b3', 'aaaabbc', [p1, p2, p3]))],
  ])
}

function refusal(run: () => void): string {
  try {
    run()
  } catch (error) {
    expect(error).toBeInstanceOf(BrError)
    expect((error as BrError).code).toBe('integrity')
    return (error as BrError).message
  }

  throw new Error('accepted')
}

/** `edit` applied to member `id`'s WAL entry. */
function edited(id: string, edit: (e: FileEntry) => void): Map<string, Manifest> {
  const manifests = chain()
  edit(manifests.get(id)!.entries[0] as FileEntry)
  return manifests
}

describe('checkFinalManifest', () => {
  it('accepts each part from the member that holds it', () => {
    const manifests = chain()
    expect(() => checkFinalManifest(manifests.get('b3')!, manifests)).not.toThrow()
  })

  it('refuses a part its member does not hold as the final manifest says', () => {
    const cases: Array<[string, (e: FileEntry) => void, RegExp]> = [
      // the first member held other bytes, or another size, or held them as parts
      [
        'b1',
        (e) => {
          e.sha256 = sha('AAAA')
        },
        /backup b3: part 1 of wal is not in backup b1 as its manifest says/,
      ],
      [
        'b1',
        (e) => {
          e.size = 5
        },
        /part 1 of wal is not in backup b1/,
      ],
      [
        'b1',
        (e) => {
          e.in = 'b0'
        },
        /part 1 of wal is not in backup b1/,
      ],
      // the middle member's parts differ from the final manifest's first two
      [
        'b2',
        (e) => {
          e.parts![0].sha256 = sha('x')
        },
        /part 2 of wal is not in backup b2 as its manifest says/,
      ],
      [
        'b2',
        (e) => {
          e.size = 7
        },
        /part 2 of wal is not in backup b2/,
      ],
      ['b2', (e) => delete e.parts, /part 2 of wal is not in backup b2/],
    ]
    for (const [id, edit, message] of cases) {
      const manifests = edited(id, edit)
      expect(refusal(() => checkFinalManifest(manifests.get('b3')!, manifests))).toMatch(message)
    }
  })

  it('refuses a final manifest whose parts its own member does not list', () => {
    const manifests = chain()
    const target = structuredClone(manifests.get('b3')!)
    ;(target.entries[0] as FileEntry).parts![2].sha256 = sha('d')
    expect(refusal(() => checkFinalManifest(target, manifests))).toMatch(/wal is not in backup b3 as its manifest says/)
    const unread = new Map([...manifests].filter(([id]) => id !== 'b1'))
    expect(refusal(() => checkFinalManifest(manifests.get('b3')!, unread))).toMatch(/part 1 of wal is not in backup b1/)
  })
})

describe('checkAssembled', () => {
  let tmp: TempDir
  beforeAll(async () => {
    tmp = await tempDir('moctl-br-chain-check-')
  })
  afterAll(async () => {
    await tmp.cleanup()
  })

  it('hashes an assembled file whole against its SHA-256', async () => {
    const final = chain().get('b3')!
    await writeFile(join(tmp.path, 'wal'), 'aaaabbc')
    await expect(checkAssembled(tmp.path, final)).resolves.toBeUndefined()
    await writeFile(join(tmp.path, 'wal'), 'aaaabbC')
    const error = await checkAssembled(tmp.path, final).catch((error_: unknown) => error_)
    expect(error).toBeInstanceOf(BrError)
    expect((error as BrError).message).toMatch(/backup b3: wal, assembled from its 3 parts, does not match its SHA-256/)
  })
})
