/**
 * Incremental backups from the CLI on MO-like data made by the project's own generator:
 * full, mutate (5% new objects, some GC'd, WAL appended), incremental, again; the incremental's
 * archive is small, every link of the chain restores byte for byte, and delete/prune respect
 * the chain. Bad input: unknown or foreign bases, a host with neither cache nor key, a chain
 * with a missing member. The commands run in process (runInProcess), but one delete and one prune,
 * which run as processes (bin/run.js).
 */
import {cp, readdir, readFile, rm, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {FileEntry, Manifest} from '../../src/lib/archive/types.js'

import {createMoData, mutateMoData} from '../../scripts/make-mo-data.mjs'
import {decryptBuffer} from '../../src/lib/archive/age.js'
import {decodeManifest} from '../../src/lib/archive/manifest.js'
import {backupArgs, encryptTo, NO_SQL, readWith, restoreArgs, suiteKey, type SuiteKey} from '../helpers/args.js'
import {runCli, runInProcess, tempDir, type TempDir} from '../helpers/cli.js'
import {treeHashes} from '../helpers/tree.js'

let tmp: TempDir
let dataDir: string
let repo: string
let keyFile: string
let recipient: string
let key: SuiteKey
let env: NodeJS.ProcessEnv
const ids: string[] = []
const states: Record<string, string>[] = []

const withoutCaches = (t: Record<string, string>) =>
  Object.fromEntries(Object.entries(t).filter(([k]) => !k.startsWith('shared-cache') && !k.startsWith('tmp')))

async function backup(
  ...extra: string[]
): Promise<{id: string; record: Record<string, unknown> & {archive: {size: number}}; stderr: string}> {
  const r = await runInProcess(backupArgs(repo, dataDir, ...encryptTo(key), ...NO_SQL, '--json', ...extra), {env})
  expect(r.code, r.stderr + r.stdout).toBe(0)
  const record = JSON.parse(r.stdout)
  return {id: record.id, record, stderr: r.stderr}
}

beforeAll(async () => {
  tmp = await tempDir('moctl-br-inc-')
  dataDir = join(tmp.path, 'mo-data')
  repo = join(tmp.path, 'repo')
  // The manifest cache of "this host" lives here; a test below plays a host without one.
  env = {XDG_CACHE_HOME: join(tmp.path, 'cache')}
  createMoData(dataDir, {seed: 11, size: '24MiB'})
  key = await suiteKey(tmp.path, 'backup.key')
  keyFile = key.identity
  recipient = key.recipient
  const full = await backup()
  ids.push(full.id)
  states.push(withoutCaches(await treeHashes(dataDir)))
  for (const seed of [12, 13]) {
    mutateMoData(dataDir, {seed, wal: '256KiB'})
    const inc = await backup('--type', 'incremental')
    ids.push(inc.id)
    states.push(withoutCaches(await treeHashes(dataDir)))
  }
})

/** A backup's manifest.age, decrypted with the suite's identity. */
async function manifestOf(id: string): Promise<Manifest> {
  const bytes = await readFile(join(repo, 'backups', id, 'manifest.age'))
  const identity = (await readFile(keyFile, 'utf8')).match(/AGE-SECRET-KEY-1\w+/)![0]
  return decodeManifest(await decryptBuffer(bytes, {identities: [identity], passphrases: []}))
}

afterAll(async () => {
  await tmp?.cleanup()
})

describe('incremental backups', () => {
  it('store only what changed: each incremental is under 10% of the full backup', async () => {
    const list = JSON.parse((await runInProcess(['br', 'list', '--path', repo, '--json'])).stdout)
    expect(list.map((r: {id: string}) => r.id)).toEqual(ids)
    expect(list.map((r: {type: string}) => r.type)).toEqual(['full', 'incremental', 'incremental'])
    expect(list[1]).toMatchObject({base: ids[0], chain: [ids[0], ids[1]]})
    expect(list[2]).toMatchObject({base: ids[1], chain: ids})
    for (const inc of list.slice(1)) expect(inc.archive.size).toBeLessThan(list[0].archive.size * 0.1)
  })

  it('restores every link of the chain byte for byte', async () => {
    for (const [i, id] of ids.entries()) {
      const target = join(tmp.path, `restore-${i}`, 'mo-data')

      const r = await runInProcess(restoreArgs(id, repo, target, ...readWith(key), ...NO_SQL))
      expect(r.code, r.stderr).toBe(0)

      expect(await treeHashes(target)).toEqual(states[i])
    }

    // mtimes too: the next incremental decides by them.
    const wal = Object.keys(states[2]).find((k) => k.endsWith('.log'))!
    expect((await stat(join(tmp.path, 'restore-2', 'mo-data', wal))).mtimeMs).toBe(
      (await stat(join(dataDir, wal))).mtimeMs,
    )
  })

  it('packs the WAL segment that grew as its appended bytes: the manifests list its parts', async () => {
    const manifests = await Promise.all(ids.map(async (id) => manifestOf(id)))
    const wal = Object.keys(states[0])
      .filter((k) => k.startsWith('logservice-data/') && k.endsWith('.log'))
      .sort()
      .at(-1)!
    const entries = manifests.map((m) => m.entries.find((e) => e.path === wal) as FileEntry)
    expect(entries[0].parts).toBeUndefined()
    expect(manifests[0].format).toBe(1)
    expect(entries[1].parts!.map((p) => p.in)).toEqual([ids[0], ids[1]])
    expect(entries[2].parts!.map((p) => p.in)).toEqual(ids)
    expect(entries[2].parts!.slice(0, 2)).toEqual(entries[1].parts)
    // mutate appends 256 KiB each time; the whole file's SHA-256 is the one the tree has.
    expect(entries[2].parts!.slice(1).map((p) => p.size)).toEqual([256 * 1024, 256 * 1024])
    expect(entries[2].sha256).toBe(states[2][wal])
    expect(manifests.slice(1).map((m) => m.format)).toEqual([2, 2])
  })

  it('verifies the whole chain', async () => {
    const r = await runInProcess(['br', 'verify', ids[2], '--path', repo, '--identity', keyFile, '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({chain: ids, ok: true})
  })

  it('--checksum decides by content and says how many files it re-read', async () => {
    const r = await runInProcess(
      backupArgs(repo, dataDir, ...encryptTo(key), ...NO_SQL, '--type', 'incremental', '--checksum'),
      {env},
    )
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/0 new or changed files .*; \d+ files re-read for --checksum/)
    await runInProcess(['br', 'delete', r.stdout.trim(), '--path', repo])
  })
})

// Base resolution (latest, prefix, another data dir, none, damaged) is tested in process:
// test/unit/lib/backup/base.test.ts. This is its CLI smoke test.
describe('incremental bad input', () => {
  it('an unknown --base names it (exit 2)', async () => {
    const r = await runInProcess(
      backupArgs(repo, dataDir, '--recipient', recipient, ...NO_SQL, '--type', 'incremental', '--base', 'ffff0000'),
      {env},
    )
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('backup ffff0000 not found')
  })

  it('a host with neither the cached manifest nor a key says what to pass; with --identity it works', async () => {
    const fresh = {XDG_CACHE_HOME: join(tmp.path, 'fresh-cache')}
    const args = backupArgs(repo, dataDir, '--recipient', recipient, ...NO_SQL, '--type', 'incremental')
    const r = await runInProcess(args, {env: fresh})
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('not cached on this host')
    expect(r.stderr).toContain('--identity')
    expect(r.stderr).toContain('--type full')
    const ok = await runInProcess([...args, '--identity', keyFile], {env: fresh})
    expect(ok.code, ok.stderr).toBe(0)
    expect((await runInProcess(['br', 'delete', ok.stdout.trim(), '--path', repo])).code).toBe(0)
  })

  it('a chain with a missing member is reported before anything is written (exit 3)', async () => {
    const copy = join(tmp.path, 'broken-repo')
    await cp(repo, copy, {recursive: true})
    await rm(join(copy, 'backups', ids[1], 'backup.json'))
    const target = join(tmp.path, 'broken-target')
    const r = await runInProcess(restoreArgs(ids[2], copy, target, ...readWith(key), ...NO_SQL))
    expect(r.code).toBe(3)
    expect(r.stderr).toContain(ids[1])
    await expect(stat(target)).rejects.toThrow()
  })
})

describe('delete and prune', () => {
  it('refuses to delete a base with dependants; --cascade --dry-run names them; --cascade removes them', async () => {
    const copy = join(tmp.path, 'delete-repo')
    await cp(repo, copy, {recursive: true})
    const refused = await runInProcess(['br', 'delete', ids[1], '--path', copy])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toContain(ids[2])
    const dry = await runInProcess(['br', 'delete', ids[1], '--path', copy, '--cascade', '--dry-run', '--json'])
    expect(dry.code).toBe(0)
    expect(JSON.parse(dry.stdout)).toEqual({dryRun: true, removed: [ids[2], ids[1]]})
    expect((await readdir(join(copy, 'backups'))).sort()).toEqual([...ids].sort())
    const done = await runCli(['br', 'delete', ids[1], '--path', copy, '--cascade'])
    expect(done.code, done.stderr).toBe(0)
    expect(await readdir(join(copy, 'backups'))).toEqual([ids[0]])
  })

  it('prunes chain-aware, and says when there is nothing to do', async () => {
    const copy = join(tmp.path, 'prune-repo')
    await cp(repo, copy, {recursive: true})
    const nothing = await runInProcess(['br', 'prune', '--path', copy, '--keep-last', '3'])
    expect(nothing.code).toBe(0)
    expect(nothing.stdout).not.toContain('removed')
    const last = await runCli(['br', 'prune', '--path', copy, '--keep-last', '1', '--json'])
    expect(last.code, last.stderr).toBe(0)
    // The newest incremental needs its whole chain: nothing may go.
    expect(JSON.parse(last.stdout).removed).toEqual([])
    expect((await readdir(join(copy, 'backups'))).length).toBe(3)
    const none = await runInProcess(['br', 'prune', '--path', copy])
    expect(none.code).toBe(2)
    expect(none.stderr).toContain('retention policy')
  })
})
