/**
 * The one metadata pass of a restore (tree-writer.ts applyTreeMetadata with owners.ts ownerPlan):
 * owners resolved as the pass meets them, modes and mtimes set, dirs after what is in them, and
 * the owner warnings said once, at the end.
 */
import {lstat, mkdir, symlink, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {Manifest, Owner} from '../../../../src/lib/archive/types.js'

import {Breather} from '../../../../src/lib/archive/breather.js'
import {ownerPlan} from '../../../../src/lib/archive/owners.js'
import {applyTreeMetadata} from '../../../../src/lib/archive/tree-writer.js'
import {tempDir} from './fixture.js'

const isRoot = process.getuid?.() === 0
if (!isRoot && process.env.CI) throw new Error('the owner tests need root, and CI runs as root: run them as root')

const NOBODY_NAME = `moctlnone${Math.random().toString(36).slice(2, 8)}`
const byName: Owner = {gid: 4242, gname: 'root', uid: 4242, uname: 'root'}
const unknown: Owner = {gid: 23_101, gname: NOBODY_NAME, uid: 23_100, uname: NOBODY_NAME}

let work: Awaited<ReturnType<typeof tempDir>>
let seq = 0

beforeAll(async () => {
  work = await tempDir()
})

afterAll(async () => {
  await work.cleanup()
})

/** A tree as read.ts leaves it (bytes in place, the restoring user's owner and private modes), and its manifest. */
async function tree(): Promise<{dest: string; manifest: Pick<Manifest, 'entries' | 'root'>}> {
  const dest = join(work.dir, `t${++seq}`)
  await mkdir(join(dest, 'd'), {recursive: true})
  await writeFile(join(dest, 'd/f'), 'x', {mode: 0o600})
  await writeFile(join(dest, 'g'), 'y', {mode: 0o600})
  await symlink('d/f', join(dest, 'l'))
  return {
    dest,
    manifest: {
      entries: [
        {mode: 0o750, mtimeMs: 1_000_000, owner: byName, path: 'd', type: 'dir'},
        {
          in: 'b',
          mode: 0o640,
          mtimeMs: 2_000_000,
          owner: unknown,
          path: 'd/f',
          sha256: '0'.repeat(64),
          size: 1,
          type: 'file',
        },
        {
          in: 'b',
          mode: 0o604,
          mtimeMs: 3_000_000,
          owner: byName,
          path: 'g',
          sha256: '0'.repeat(64),
          size: 1,
          type: 'file',
        },
        {mtimeMs: 4_000_000, owner: unknown, path: 'l', target: 'd/f', type: 'symlink'},
      ],
      root: {mode: 0o711, mtimeMs: 5_000_000, owner: byName},
    },
  }
}

describe('applyTreeMetadata', () => {
  it('as another user: modes and mtimes, no owner changed, one warning after the pass', async () => {
    const {dest, manifest} = await tree()
    const warnings: string[] = []
    await applyTreeMetadata(dest, manifest, {
      breather: new Breather(),
      owners: ownerPlan({onWarning: (w) => warnings.push(w), runner: {egid: 4321, euid: 1234, groups: []}}),
    })
    for (const [path, mode, mtimeMs] of [
      ['', 0o711, 5_000_000],
      ['d', 0o750, 1_000_000],
      ['d/f', 0o640, 2_000_000],
      ['g', 0o604, 3_000_000],
    ] as const) {
      const info = await lstat(join(dest, path))
      expect([path, info.mode & 0o7777, info.mtimeMs]).toEqual([path, mode, mtimeMs])
      expect(info.uid, path).toBe(process.getuid?.())
    }

    expect((await lstat(join(dest, 'l'))).mtimeMs).toBe(4_000_000)
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/^not running as root: .*root \(uid 4242\), .* \(uid 23100\)/)
  })

  it.skipIf(!isRoot)(
    `as root: each owner by name when it exists here, by number otherwise, one warning for the missing${isRoot ? '' : ' (SKIPPED: not root)'}`,
    async () => {
      const {dest, manifest} = await tree()
      const warnings: string[] = []
      await applyTreeMetadata(dest, manifest, {
        breather: new Breather(),
        owners: ownerPlan({onWarning: (w) => warnings.push(w), runner: {egid: 0, euid: 0, groups: [0]}}),
      })
      for (const [path, uid, gid] of [
        ['', 0, 0],
        ['d', 0, 0],
        ['d/f', 23_100, 23_101],
        ['g', 0, 0],
        ['l', 23_100, 23_101],
      ] as const) {
        const info = await lstat(join(dest, path))
        expect([path, info.uid, info.gid]).toEqual([path, uid, gid])
      }

      expect(warnings).toEqual([
        `user ${NOBODY_NAME} (23100), group ${NOBODY_NAME} (23101) of the backup do not exist on this host: their files get the recorded ids; pass --chown USER[:GROUP] to give them to a local account`,
      ])
    },
  )
})
