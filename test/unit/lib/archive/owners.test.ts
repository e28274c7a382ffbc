/**
 * How owners are looked up and given back: `--chown` parsed against this host's accounts (root
 * and its group exist everywhere; a name made of random letters nowhere), and the plan a restore
 * follows as root, as another user, and with --chown. The runner is passed in, so the non-root
 * cases run here whoever runs the tests.
 */
import {describe, expect, it} from 'vitest'

import type {Manifest, Owner} from '../../../../src/lib/archive/types.js'

import {Accounts, OwnerTable, resolveChown} from '../../../../src/lib/archive/owners.js'
import {BrError} from '../../../../src/lib/errors.js'
import {planOwners} from './plan-owners.js'

const ROOT_RUNNER = {egid: 0, euid: 0, groups: [0]}
const USER_RUNNER = {egid: 4321, euid: 1234, groups: [4321, 77]}
const NOBODY_NAME = `moctlnone${Math.random().toString(36).slice(2, 8)}`

async function chownError(spec: string, runner = ROOT_RUNNER): Promise<BrError> {
  const error = await resolveChown(spec, {runner}).catch((error_: unknown) => error_)
  expect(error, spec).toBeInstanceOf(BrError)
  expect((error as BrError).code, spec).toBe('usage')
  return error as BrError
}

function manifestOf(...owners: Owner[]): Pick<Manifest, 'entries' | 'root'> {
  return {
    entries: owners.map((owner, i) => ({mode: 0o755, mtimeMs: 1, owner, path: `d${i}`, type: 'dir' as const})),
  }
}

describe('resolveChown', () => {
  it('takes names or numbers, and the login group when no group is given', async () => {
    expect(await resolveChown('root', {runner: ROOT_RUNNER})).toEqual({gid: 0, uid: 0})
    expect(await resolveChown('root:', {runner: ROOT_RUNNER})).toEqual({gid: 0, uid: 0})
    expect(await resolveChown('root:root', {runner: ROOT_RUNNER})).toEqual({gid: 0, uid: 0})
    expect(await resolveChown('0:0', {runner: ROOT_RUNNER})).toEqual({gid: 0, uid: 0})
    // Numbers need no account: a new host's ids, given as numbers.
    expect(await resolveChown('54321:54322', {runner: ROOT_RUNNER})).toEqual({gid: 54_322, uid: 54_321})
  })

  it('refuses unknown names, malformed specs and ids out of range, as usage errors', async () => {
    expect((await chownError(NOBODY_NAME)).message).toBe(`--chown: no user ${NOBODY_NAME} on this host`)
    expect((await chownError(`root:${NOBODY_NAME}`)).message).toBe(`--chown: no group ${NOBODY_NAME} on this host`)
    expect((await chownError('54321')).message).toMatch(/uid 54321 has no account here, so no login group/)
    expect((await chownError('54321')).suggestions.join('\n')).toMatch(/--chown 54321:GROUP/)
    for (const spec of ['', ':root', 'a:b:c']) expect((await chownError(spec)).message).toMatch(/is not USER\[:GROUP]/)
    expect((await chownError(String(2 ** 32))).message).toMatch(/no user 4294967296/)
  })

  it('refuses, when not root, an owner other than the runner', async () => {
    const error = await chownError('root', USER_RUNNER)
    expect(error.message).toBe(
      '--chown root: only root can give the restored files to another owner (running as uid 1234)',
    )
    expect(await resolveChown('1234:77', {runner: USER_RUNNER})).toEqual({gid: 77, uid: 1234})
    expect((await chownError('1234:78', USER_RUNNER)).message).toMatch(/only root/)
  })
})

describe('planOwners', () => {
  const rootByName = {gid: 4242, gname: 'root', uid: 4242, uname: 'root'}
  const unknown = {gid: 5001, gname: NOBODY_NAME, uid: 5000, uname: NOBODY_NAME}
  const nameless = {gid: 6001, gname: '', uid: 6000, uname: ''}

  it('as root: by name when the name exists here, by number otherwise, warning once about missing names', async () => {
    const warnings: string[] = []
    const plan = await planOwners(
      {...manifestOf(rootByName, unknown, unknown, nameless), root: {mode: 0o755, mtimeMs: 1}},
      {
        onWarning: (w) => warnings.push(w),
        runner: ROOT_RUNNER,
      },
    )
    expect(plan.ids(rootByName)).toEqual({gid: 0, uid: 0})
    expect(plan.ids(unknown)).toEqual({gid: 5001, uid: 5000})
    expect(plan.ids(nameless)).toEqual({gid: 6001, uid: 6000})
    // No owner recorded (an older manifest): left as created.
    expect(plan.ids()).toBeUndefined()
    expect(warnings).toEqual([
      `user ${NOBODY_NAME} (5000), group ${NOBODY_NAME} (5001) of the backup do not exist on this host: their files get the recorded ids; pass --chown USER[:GROUP] to give them to a local account`,
    ])
  })

  it('with --chown: that owner for everything, older entries without owners too', async () => {
    const plan = await planOwners(manifestOf(unknown), {chown: {gid: 7, uid: 8}, runner: USER_RUNNER})
    expect(plan.ids(unknown)).toEqual({gid: 7, uid: 8})
    expect(plan.ids()).toEqual({gid: 7, uid: 8})
  })

  it('as another user: changes nothing, and warns once when the backup had other owners', async () => {
    const warnings: string[] = []
    const plan = await planOwners(manifestOf(nameless, nameless, unknown), {
      onWarning: (w) => warnings.push(w),
      runner: USER_RUNNER,
    })
    expect(plan.ids(nameless)).toBeUndefined()
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(
      /^not running as root: the restored files belong to uid 1234 \(gid 4321\), not to their owners in the backup \(uid 6000, .*\); restore as root to give them back, or pass --chown$/,
    )

    const mine = {gid: 4321, gname: '', uid: 1234, uname: ''}
    const quiet: string[] = []
    await planOwners(
      {...manifestOf(mine), root: {mode: 0o755, mtimeMs: 1}},
      {onWarning: (w) => quiet.push(w), runner: USER_RUNNER},
    )
    expect(quiet).toEqual([])
  })
})

describe('OwnerTable', () => {
  it('shares one owner object per (uid, gid) and names them from this host', async () => {
    const table = new OwnerTable(new Accounts())
    const a = table.owner(0, 0)
    expect(table.owner(0, 0)).toBe(a)
    const none = table.owner(2_000_000_000, 2_000_000_001)
    await table.name()
    expect(a).toEqual({gid: 0, gname: 'root', uid: 0, uname: 'root'})
    expect(none).toEqual({gid: 2_000_000_001, gname: '', uid: 2_000_000_000, uname: ''})
  })
})
