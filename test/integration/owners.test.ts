/**
 * Issue 8 §1: a restore gives back owners and modes. A data directory owned by a service
 * account (here a user created for the test, as MatrixOne runs as its own user), with mixed
 * modes and owners, is backed up and restored as root: every entry, the directory itself
 * included, has its owner, group, mode and mtime again, in the staging dir (seen by the stop
 * command, before the swap), in the swapped-in dir and in `<data>.before-<id>`; and the MariaDB
 * stand-in, run as that user, answers SQL on it. Also: `--chown` to another user (and a bad one
 * refused before anything happens), a restore by a non-root user (files are that user's, one
 * warning), a `--clone` backup, and a backup written before owners were recorded.
 *
 * Needs root (to create users and chown), as CI runs; elsewhere it is skipped, saying so, and
 * under CI=true a non-root run fails instead.
 */
import {execFile} from 'node:child_process'
import {chmod, chown, cp, lchown, lstat, mkdir, readdir, readFile, readlink, symlink, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {promisify} from 'node:util'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {backupArgs, mariadbService, restoreArgs, serviceArgs} from '../helpers/args.js'
import {ROOT, RUN, runCli, runInProcess, tempDir} from '../helpers/cli.js'
import {mariadbAvailable, skipReason, startMariadb, type TestServer} from '../helpers/mariadb.js'
import {needs} from '../helpers/needs.js'

const run = promisify(execFile)
const isRoot = process.getuid?.() === 0
const mariadb = mariadbAvailable()
needs(isRoot, 'owners.test.ts needs root (useradd, chown)')
const why = isRoot ? (mariadb ? '' : skipReason()) : 'not root: cannot create users or chown'

interface Stat {
  gid: number
  mode: number
  mtimeMs: number
  type: 'dir' | 'file' | 'symlink'
  uid: number
}

/** lstat of every entry under `root`, the root itself as '' */
async function snapshot(root: string): Promise<Map<string, Stat>> {
  const out = new Map<string, Stat>()
  const walk = async (rel: string) => {
    const info = await lstat(rel === '' ? root : join(root, rel))
    const type = info.isDirectory() ? 'dir' : info.isSymbolicLink() ? 'symlink' : 'file'
    out.set(rel, {gid: info.gid, mode: info.mode & 0o7777, mtimeMs: info.mtimeMs, type, uid: info.uid})
    if (type === 'dir') {
      for (const name of (await readdir(rel === '' ? root : join(root, rel))).sort())
        await walk(rel === '' ? name : `${rel}/${name}`)
    }
  }

  await walk('')
  return out
}

/** What `find -printf` says of every entry: the stop command takes it of the staging dir. */
function parseFind(text: string): Map<string, Stat> {
  const out = new Map<string, Stat>()
  for (const line of text.trim().split('\n')) {
    const [uid, gid, mode, mtime, kind, ...rest] = line.split(' ')
    const type = kind === 'd' ? 'dir' : kind === 'l' ? 'symlink' : 'file'
    out.set(rest.join(' '), {
      gid: Number(gid),
      mode: Number.parseInt(mode, 8),
      mtimeMs: Number(mtime) * 1000,
      type,
      uid: Number(uid),
    })
  }

  return out
}

const shown = (s: Stat) => `${s.type} ${s.uid}:${s.gid} ${s.type === 'symlink' ? '' : s.mode.toString(8)}`

function expectSame(actual: Map<string, Stat>, expected: Map<string, Stat>, what: string, mtimes = true): void {
  expect([...actual.keys()].sort(), `${what}: entries`).toEqual([...expected.keys()].sort())
  for (const [path, e] of expected) {
    const a = actual.get(path)!
    expect(`${path}: ${shown(a)}`, what).toBe(`${path}: ${shown(e)}`)
    if (mtimes) expect(Math.abs(a.mtimeMs - e.mtimeMs), `${what}: mtime of ${path}`).toBeLessThan(1)
  }
}

async function ids(user: string): Promise<{gid: number; uid: number}> {
  const [{stdout: uid}, {stdout: gid}] = await Promise.all([run('id', ['-u', user]), run('id', ['-g', user])])
  return {gid: Number(gid), uid: Number(uid)}
}

describe.skipIf(!isRoot || !mariadb)(`owners and modes on restore${why ? ` (SKIPPED: ${why})` : ''}`, () => {
  const suffix = Math.random().toString(36).slice(2, 8)
  const owner = `moctltest${suffix}`
  const other = `moctltest${suffix}b`
  let ownerIds: {gid: number; uid: number}
  let otherIds: {gid: number; uid: number}
  let server: TestServer
  let tmp: {cleanup: () => Promise<void>; path: string}
  let repo: string
  let reader: string
  let writer: string
  let backupId: string
  /** the data dir as it was backed up */
  let backedUp: Map<string, Stat>

  beforeAll(async () => {
    for (const user of [owner, other])
      await run('useradd', ['--system', '--no-create-home', '--user-group', '--shell', '/usr/sbin/nologin', user])
    ownerIds = await ids(owner)
    otherIds = await ids(other)
    tmp = await tempDir()
    await chmod(tmp.path, 0o755)
    repo = join(tmp.path, 'repo')
    reader = join(tmp.path, 'reader.key')
    writer = join(tmp.path, 'writer.key')
    const keys = await runInProcess(['br', 'key', 'generate', '--writer-key', writer, '--reader-key', reader])
    expect(keys.code, keys.stderr).toBe(0)

    // MariaDB's own data dir, installed owned by the user, and mixed modes and owners around it.
    server = await startMariadb({user: owner})
    await server.query('create database db1')
    await server.query('create table db1.t (id int primary key, v varchar(20))')
    await server.query("insert into db1.t values (1, 'one'), (2, 'two')")
    await server.stop()
    const data = server.dataDir
    await chmod(data, 0o755)
    await mkdir(join(data, 'extra'), {mode: 0o750})
    await writeFile(join(data, 'extra', 'conf.txt'), 'x\n', {mode: 0o640})
    await writeFile(join(data, 'extra', 'nameless.bin'), 'y\n', {mode: 0o600})
    await symlink('conf.txt', join(data, 'extra', 'link'))
    await chown(join(data, 'extra'), ownerIds.uid, ownerIds.gid)
    // Another group than the owner's own, and ids no account has.
    await chown(join(data, 'extra', 'conf.txt'), ownerIds.uid, otherIds.gid)
    await chown(join(data, 'extra', 'nameless.bin'), 45_678, 45_679)
    await lchown(join(data, 'extra', 'link'), ownerIds.uid, ownerIds.gid)

    backedUp = await snapshot(data)
    const backup = await runInProcess(backupArgs(repo, data, '--writer-key', writer, '--service', 'none', '--json'))
    expect(backup.code, backup.stderr).toBe(0)
    backupId = JSON.parse(backup.stdout).id
  }, 180_000)

  afterAll(async () => {
    await server?.cleanup()
    await tmp?.cleanup()
    for (const user of [owner, other]) await run('userdel', [user]).catch(() => {})
  })

  it('as root gives back every owner, group, mode and mtime, in staging, after the swap and in .before-<id>; MariaDB runs on it as its user', async () => {
    // The server changes its data (as its user); that tree is what .before-<id> must keep.
    await server.start()
    await server.query('drop database db1')
    await server.query('create database db3')
    await server.stop()
    const replaced = await snapshot(server.dataDir)
    expect(replaced.get('')).toMatchObject({mode: 0o755, uid: ownerIds.uid})

    const seen = join(tmp.path, 'staging.txt')
    const staging = join(server.baseDir, `.data.restore-${backupId}-*`)
    const restore = await runInProcess(
      restoreArgs(
        backupId,
        repo,
        server.dataDir,
        '--identity',
        reader,
        '--force',
        ...mariadbService(server, {
          stop: `find ${staging} -printf '%U %G %m %T@ %y %P\\n' > ${seen}; ${server.stopCommand}`,
        }),
        '--json',
      ),
    )
    expect(restore.code, restore.stderr).toBe(0)
    expect(restore.stderr).not.toMatch(/warn/i)

    // The staging dir, as the stop command saw it just before the swap: everything as backed up.
    expectSame(parseFind(await readFile(seen, 'utf8')), backedUp, 'staging')
    // After the swap (the server has run on it since: owners and modes, not mtimes).
    const now = await snapshot(server.dataDir)
    const kept = [...now].filter(([path]) => backedUp.has(path))
    expect(kept.length).toBeGreaterThan(20)
    for (const [path, s] of kept) {
      const was = backedUp.get(path)!
      expect(`${path} ${s.uid}:${s.gid} ${s.mode.toString(8)}`).toBe(
        `${path} ${was.uid}:${was.gid} ${was.mode.toString(8)}`,
      )
    }

    expect(now.get('')).toMatchObject({mode: 0o755, uid: ownerIds.uid})
    expect(now.get('extra/nameless.bin')).toMatchObject({gid: 45_679, uid: 45_678})
    // The replaced data keeps its owners too.
    expectSame(await snapshot(`${server.dataDir}.before-${backupId}`), replaced, '.before', false)
    // mariadbd --user=<owner> runs on the restored files and answers.
    expect(await server.query('select id, v from db1.t order by id')).toEqual([
      {id: 1, v: 'one'},
      {id: 2, v: 'two'},
    ])
    expect((await server.query('show databases')).map((r) => Object.values(r)[0])).not.toContain('db3')
    expect((await run('ps', ['-o', 'user=', '-p', String(await server.pid())])).stdout.trim()).toBe(owner)
  }, 240_000)

  it('--chown gives everything to one owner; an unknown user or group is refused before anything is stopped', async () => {
    const marker = join(tmp.path, 'stopped')
    const target = join(tmp.path, 'chowned', 'mo-data')
    const restore = (...more: string[]) =>
      runInProcess(
        restoreArgs(
          backupId,
          repo,
          target,
          '--identity',
          reader,
          ...serviceArgs(`touch ${marker}`, 'true'),
          '--sql-timeout',
          '1',
          ...more,
        ),
      )
    for (const [spec, message] of [
      ['nosuch-moctl-user', 'no user nosuch-moctl-user on this host'],
      [`${other}:nosuch-moctl-group`, 'no group nosuch-moctl-group on this host'],
      ['12345', 'uid 12345 has no account here, so no login group'],
    ]) {
      const bad = await restore('--chown', spec)
      expect(bad.code, bad.stderr).toBe(2)
      expect(bad.stderr).toContain(message)
      expect(await readdir(tmp.path)).not.toContain('chowned')
      expect(await readdir(tmp.path)).not.toContain('stopped')
    }

    const good = await runInProcess(
      restoreArgs(backupId, repo, target, '--identity', reader, '--service', 'none', '--chown', other),
    )
    expect(good.code, good.stderr).toBe(0)
    const got = await snapshot(target)
    const expected = new Map([...backedUp].map(([path, s]) => [path, {...s, ...otherIds}]))
    expectSame(got, expected, '--chown')
  }, 120_000)

  it('as a user other than root: the files are that user’s, with one warning', async () => {
    // That user's own copy of the repository and key, a home, and a place to restore into.
    const mine = join(tmp.path, 'nonroot')
    await mkdir(mine)
    await cp(repo, join(mine, 'repo'), {recursive: true})
    await cp(reader, join(mine, 'reader.key'))
    await mkdir(join(mine, 'home'))
    await run('chown', ['-R', `${otherIds.uid}:${otherIds.gid}`, mine])
    const target = join(mine, 'mo-data')
    const result = await runCli(
      [
        `--regid=${otherIds.gid}`,
        '--init-groups',
        process.execPath,
        RUN,
        'br',
        'restore',
        backupId,
        '--path',
        join(mine, 'repo'),
        '--data-dir',
        target,
        '--identity',
        join(mine, 'reader.key'),
        '--service',
        'none',
      ],
      {bin: `--reuid=${otherIds.uid}`, env: {HOME: join(mine, 'home')}, node: '/usr/bin/setpriv'},
    )
    expect(result.code, result.stderr).toBe(0)
    const warnings = result.stderr.match(/not running as root/g) ?? []
    expect(warnings, result.stderr).toHaveLength(1)
    expect(result.stderr).toContain(`the restored files belong to uid ${otherIds.uid}`)
    expect(result.stderr).toContain(`${owner} (uid ${ownerIds.uid})`)
    const expected = new Map([...backedUp].map(([path, s]) => [path, {...s, ...otherIds}]))
    expectSame(await snapshot(target), expected, 'non-root')
  }, 120_000)

  it('a --clone backup records the real owners, not the clone’s', async () => {
    await server.stop()
    const now = await snapshot(server.dataDir)
    const backup = await runInProcess(
      backupArgs(
        repo,
        server.dataDir,
        '--writer-key',
        writer,
        ...mariadbService(server, {stop: 'true'}),
        '--clone',
        '--json',
      ),
    )
    expect(backup.code, backup.stderr).toBe(0)
    const target = join(tmp.path, 'from-clone', 'mo-data')
    const restore = await runInProcess(
      restoreArgs(JSON.parse(backup.stdout).id, repo, target, '--identity', reader, '--service', 'none'),
    )
    expect(restore.code, restore.stderr).toBe(0)
    expectSame(await snapshot(target), now, '--clone')
    expect((await snapshot(target)).get('')).toMatchObject({mode: 0o755, uid: ownerIds.uid})
  }, 180_000)

  it('restores a backup written before owners were recorded, owned by the restoring user', async () => {
    // test/fixtures/old-manifest/README.md says how it was made.
    const fixture = join(ROOT, 'test', 'fixtures', 'old-manifest')
    const old = join(tmp.path, 'old')
    await cp(fixture, old, {recursive: true})
    await chmod(join(old, 'reader.key'), 0o600)
    const target = join(old, 'mo-data')
    const restore = await runInProcess(
      restoreArgs(
        '01a22f38-fb0d-769f-8f0a-7724e274a15a',
        join(old, 'repo'),
        target,
        '--identity',
        join(old, 'reader.key'),
        '--service',
        'none',
      ),
    )
    expect(restore.code, restore.stderr).toBe(0)
    expect(restore.stderr).not.toMatch(/warn/i)
    const got = await snapshot(target)
    const t = Date.parse('2024-01-02T03:04:05Z')
    expect([...got].map(([p, s]) => [p, s.type, s.uid, s.gid, s.type === 'symlink' ? 0 : s.mode])).toEqual([
      // The data dir itself was not recorded: as before, it is the staging dir's 0700.
      ['', 'dir', 0, 0, 0o700],
      ['a.txt', 'file', 0, 0, 0o640],
      ['link', 'symlink', 0, 0, 0],
      ['sub', 'dir', 0, 0, 0o750],
      ['sub/b.txt', 'file', 0, 0, 0o644],
    ])
    expect(got.get('a.txt')?.mtimeMs).toBe(t)
    expect(await readFile(join(target, 'sub', 'b.txt'), 'utf8')).toBe('deep\n')
    expect(await readlink(join(target, 'link'))).toBe('a.txt')
  }, 60_000)
})
