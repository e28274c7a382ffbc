/**
 * Nothing stops the service until every input is checked (issue 8, section 2), and what silently
 * made a bad backup is refused (section 3: a repository that overlaps the data directory, a
 * restore target that overlaps the repository; --exclude adds to the defaults).
 *
 * Each bad input runs with `--service command` whose stop command would leave a marker file: the
 * marker must never appear, and the exit code must be the table's. The commands run in process
 * (runInProcess): what is tested is what each decides before it stops anything. (A real mariadbd kept up
 * through such a refusal is in refusals-mariadb.test.ts.) The tmpfs cases need root, as CI has.
 */
import {execFile} from 'node:child_process'
import {mkdir, readdir, readFile, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {promisify} from 'node:util'
import {afterAll, beforeAll, beforeEach, describe, expect, it} from 'vitest'

import {backupArgs, markingService, NO_SQL, readWith, restoreArgs, suiteKey} from '../helpers/args.js'
import {optionsFor, takeBackup} from '../helpers/backup.js'
import {runInProcess, tempDir, type TempDir} from '../helpers/cli.js'
import {makeSmallDataDir} from '../helpers/fixtures.js'
import {skipNote} from '../helpers/needs.js'
import {canMount, NOT_ROOT, tmpfsMounts} from '../helpers/tmpfs.js'

const run = promisify(execFile)
const root = canMount()

let tmp: TempDir
let dataDir: string
let repo: string
let keyFile: string
let recipient: string
let fullId: string
let marker: string
let env: NodeJS.ProcessEnv
const mounts = tmpfsMounts()

/** A stop command that leaves the marker (and a start command that removes nothing): any stop is seen. */
const service = () => markingService(marker)

const backupTo = (repoPath: string, ...args: string[]) =>
  runInProcess(backupArgs(repoPath, dataDir, ...service(), ...args), {env})
const backup = (...args: string[]) => backupTo(repo, ...args)
const restore = (target: string, ...args: string[]) =>
  runInProcess(restoreArgs(fullId, repo, target, '--force', ...service(), ...args), {env})

/** The top-level names a backup restores. */
const restoredTop = async (r: string, id: string) => {
  const target = join(tmp.path, `files-${id}`)
  const restored = await runInProcess(restoreArgs(id, r, target, ...readWith(keyFile), ...NO_SQL), {
    env,
  })
  expect(restored.code, restored.stderr).toBe(0)
  return readdir(target)
}

async function expectNoStop(): Promise<void> {
  await expect(stat(marker)).rejects.toThrow(/ENOENT/)
}

const tmpfs = (dir: string, size: string) => mounts.mount(dir, size)

beforeAll(async () => {
  tmp = await tempDir()
  dataDir = join(tmp.path, 'mo-data')
  repo = join(tmp.path, 'repo')
  keyFile = join(tmp.path, 'keys', 'backup.key')
  // A cache of our own: the incremental below must find no cached base manifest.
  env = {XDG_CACHE_HOME: join(tmp.path, 'cache')}
  await makeSmallDataDir(dataDir)
  // key generate --output DIR/FILE creates the missing DIR, 0700 (the README's quick start).
  const key = await runInProcess(['br', 'key', 'generate', '--output', keyFile])
  expect(key.code, key.stderr).toBe(0)
  recipient = key.stdout.trim()
  const full = await runInProcess(backupArgs(repo, dataDir, '-r', recipient, ...NO_SQL), {
    env,
  })
  expect(full.code, full.stderr).toBe(0)
  fullId = full.stdout.trim()
})

// A marker of its own per test: one test's stop never fails another's check.
let markers = 0
beforeEach(() => {
  marker = join(tmp.path, `STOPPED-${++markers}`)
})

afterAll(async () => {
  await mounts.unmountAll()
  await tmp?.cleanup()
})

describe('key generate --output into a missing directory', () => {
  it('creates the directory 0700 and the key 0600', async () => {
    expect((await stat(join(tmp.path, 'keys'))).mode & 0o777).toBe(0o700)
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600)
  })
})

describe('backup: a bad input never stops the service', () => {
  it('a recipient with a broken checksum (exit 2)', async () => {
    // The shape of an age key, but not one: the bech32 checksum fails.
    const r = await backup('-r', `${recipient.slice(0, -1)}${recipient.endsWith('q') ? 'p' : 'q'}`)
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/Error: recipient age1\w+ is not an age public key: .*checksum/i)
    await expectNoStop()
  })

  it('a recipients file with a broken key (exit 2)', async () => {
    const file = join(tmp.path, 'recipients')
    await writeFile(file, `${recipient}\nage1notakeyatallnotakeyatallnotakeyatallnotakeyatallnotakeyat\n`)
    const r = await backup('--recipients-file', file)
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('is not an age public key')
    await expectNoStop()
  })

  it('an identity that is a directory, for an incremental (exit 2)', async () => {
    const r = await backup('-r', recipient, '--type', 'incremental', '--identity', tmp.path)
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(`--identity file ${tmp.path} is a directory, not a regular file`)
    await expectNoStop()
  })

  it('an incremental whose base manifest cannot be read: no cache, no key (exit 2)', async () => {
    const r = await runInProcess(backupArgs(repo, dataDir, '-r', recipient, '--type', 'incremental', ...service()), {
      env: {...env, XDG_CACHE_HOME: join(tmp.path, 'empty-cache')},
    })
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(`the manifest of base ${fullId} is not cached on this host and no key was given`)
    await expectNoStop()
  })

  it('a repository inside the data directory, or the data directory inside the repository (exit 2)', async () => {
    const inside = await backupTo(join(dataDir, 'shared', 'backups'), '-r', recipient)
    expect(inside.code).toBe(2)
    expect(inside.stderr).toContain(
      `Error: repository ${join(dataDir, 'shared', 'backups')} is inside the data directory ${dataDir}`,
    )
    expect(inside.stderr).toContain('Hint: keep the repository outside the data directory')
    // Never created: the check comes before the repository is.
    await expect(stat(join(dataDir, 'shared', 'backups'))).rejects.toThrow(/ENOENT/)
    const same = await backupTo(dataDir, '-r', recipient)
    expect(same.code).toBe(2)
    expect(same.stderr).toContain(`repository ${dataDir} is the data directory itself`)
    const outer = await backupTo(tmp.path, '-r', recipient)
    expect(outer.code).toBe(2)
    expect(outer.stderr).toContain(`data directory ${dataDir} is inside the repository ${tmp.path}`)
    await expectNoStop()
  })

  it('compares real paths: a symlink to the data directory, a repository that does not exist yet', async () => {
    const link = join(tmp.path, 'link-to-data')
    await run('ln', ['-s', dataDir, link])
    const r = await backupTo(join(link, 'new', 'repo'), '-r', recipient)
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('is inside the data directory')
    await expect(stat(join(dataDir, 'new'))).rejects.toThrow(/ENOENT/)
    await expectNoStop()
  })

  it('a data directory reached through a file (ENOTDIR, exit 2)', async () => {
    const file = join(tmp.path, 'a-file')
    await writeFile(file, 'x')
    const r = await runInProcess(backupArgs(repo, join(file, 'mo-data'), '-r', recipient, ...service()), {env})
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/^Error: data directory .*a-file\/mo-data: a part of the path is a file, not a directory/m)
    expect(r.stderr).toContain('Hint: ')
    await expectNoStop()
  })

  it('--clone-dir that does not exist, or inside the data directory (exit 2)', async () => {
    const missing = await backup('-r', recipient, '--clone', '--clone-dir', join(tmp.path, 'no-such-dir'))
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain(`clone directory ${join(tmp.path, 'no-such-dir')} does not exist`)
    const inside = await backup('-r', recipient, '--clone', '--clone-dir', join(dataDir, 'etl'))
    expect(inside.code).toBe(2)
    expect(inside.stderr).toContain(`--clone-dir ${join(dataDir, 'etl')} is inside the data directory`)
    await expectNoStop()
  })

  it.skipIf(!root)(
    `--clone onto a filesystem without room for the copy (exit 2)${skipNote(root, NOT_ROOT)}`,
    async () => {
      const small = await tmpfs(join(tmp.path, 'small-clone'), '256k')
      const r = await backup('-r', recipient, '--clone', '--clone-dir', small)
      expect(r.code).toBe(2)
      expect(r.stderr).toMatch(/Error: not enough space to clone .* free on .*small-clone, which cannot reflink/)
      expect(await readdir(small)).toEqual([])
      await expectNoStop()
    },
  )

  it.skipIf(!root)(
    `a repository whose backups/ cannot be written, though its root can (exit 2)${skipNote(root, NOT_ROOT)}`,
    async () => {
      const roRepo = join(tmp.path, 'ro-backups-repo')
      const ok = await runInProcess(backupArgs(roRepo, dataDir, '-r', recipient, ...NO_SQL), {
        env,
      })
      expect(ok.code, ok.stderr).toBe(0)
      // The lock at the root can be taken; only the probe under backups/ finds the read-only mount.
      const backups = join(roRepo, 'backups')
      await mounts.bindReadOnly(backups)
      const r = await backupTo(roRepo, '-r', recipient)
      expect(r.code).toBe(2)
      expect(r.stderr).toMatch(
        new RegExp(`^Error: repository ${roRepo} is on a read-only filesystem \\((mkdir|open) ${backups}/`, 'm'),
      )
      expect(r.stderr).toContain('Hint: mount it read-write, or pass --path with another one')
      await expectNoStop()
      // The lock was released: the next writer is not refused.
      expect(await readdir(roRepo)).not.toContain('lock.json')
    },
  )

  it('a bad value in the config file (exit 2)', async () => {
    const configHome = join(tmp.path, 'config-home')
    await mkdir(join(configHome, 'moctl'), {mode: 0o700, recursive: true})
    await writeFile(join(configHome, 'moctl', 'config.json'), JSON.stringify({port: 99_999}), {mode: 0o600})
    const r = await runInProcess(backupArgs(repo, dataDir, '-r', recipient, ...service()), {
      env: {...env, XDG_CONFIG_HOME: configHome},
    })
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('config port must be a whole number')
    await expectNoStop()
  })
})

describe('restore: a bad input never stops the service', () => {
  it('an identity that cannot open this backup (exit 3): the manifest is decrypted before the stop', async () => {
    const other = await suiteKey(tmp.path, 'other.key')
    const target = join(tmp.path, 'restore-wrong-key')
    const r = await restore(target, ...readWith(other))
    expect(r.code).toBe(3)
    expect(r.stderr).toContain('no identity matches')
    await expect(stat(target)).rejects.toThrow(/ENOENT/)
    await expectNoStop()
  })

  it('a passphrase for a backup encrypted to recipients says which key it needs (exit 2)', async () => {
    const pass = join(tmp.path, 'pass')
    await writeFile(pass, 'not the right kind of key\n')
    const r = await restore(join(tmp.path, 'restore-pass'), '--passphrase-file', pass)
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(
      `Error: backup ${fullId} is encrypted to age recipients (age1…): a passphrase cannot open it`,
    )
    expect(r.stderr).toContain('Hint: pass --identity FILE')
    await expectNoStop()
  })

  it('an identity for a passphrase backup says which key it needs (exit 2)', async () => {
    const pass = join(tmp.path, 'pass2')
    await writeFile(pass, 'the passphrase\n')
    const passRepo = join(tmp.path, 'pass-repo')
    // The backup is taken in process, at a low scrypt work factor: the refusal is the point, and
    // a CLI passphrase backup costs a full scrypt (2^18, ~1.2 CPU-s).
    const encrypt = {passphrase: 'the passphrase', scryptLogN: 10, type: 'passphrase'} as const
    const {id} = await takeBackup(optionsFor(dataDir, passRepo, {encrypt}))
    const r = await runInProcess(
      restoreArgs(id, passRepo, join(tmp.path, 'restore-id'), '--identity', keyFile, ...service()),
      {env},
    )
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(
      `Error: backup ${id} is encrypted with a passphrase: an age identity (--identity) cannot open it`,
    )
    expect(r.stderr).toContain('Hint: pass --passphrase-file FILE')
    await expectNoStop()
  })

  it('an identity file that is a directory (EISDIR, exit 2)', async () => {
    const r = await restore(join(tmp.path, 'restore-dir-key'), '--identity', join(tmp.path, 'keys'))
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(`--identity file ${join(tmp.path, 'keys')} is a directory, not a regular file`)
    await expectNoStop()
  })

  it('a target inside the repository, or one that holds the repository (exit 2)', async () => {
    const inside = await restore(join(repo, 'mo-data'), '--identity', keyFile)
    expect(inside.code).toBe(2)
    expect(inside.stderr).toContain(`restore target ${join(repo, 'mo-data')} is inside the repository ${repo}`)
    await expect(stat(join(repo, 'mo-data'))).rejects.toThrow(/ENOENT/)
    const holding = await restore(tmp.path, '--identity', keyFile)
    expect(holding.code).toBe(2)
    expect(holding.stderr).toContain(`the repository ${repo} is inside the restore target ${tmp.path}`)
    await expectNoStop()
    // The repository is where it was, untouched.
    expect(await readdir(join(repo, 'backups'))).toContain(fullId)
  })
})

describe('--exclude adds to the default excludes', () => {
  it('--exclude etl leaves out etl and still the caches; the record and --json say what was left out', async () => {
    const r = join(tmp.path, 'exclude-repo')
    const b = await runInProcess(backupArgs(r, dataDir, '-r', recipient, '--exclude', 'etl', ...NO_SQL, '--json'), {
      env,
    })
    expect(b.code, b.stderr).toBe(0)
    const result = JSON.parse(b.stdout)
    expect(result.excluded).toEqual(['shared-cache', 'tmp', 'etl'])
    const record = JSON.parse(await readFile(join(r, 'backups', result.id, 'backup.json'), 'utf8'))
    expect(record.excluded).toEqual(['shared-cache', 'tmp', 'etl'])
    const top = await restoredTop(r, result.id)
    expect(top).not.toContain('etl')
    expect(top).not.toContain('shared-cache')
    expect(top).toContain('shared')
  })

  it('--no-default-excludes backs up the caches too', async () => {
    const r = join(tmp.path, 'no-default-repo')
    const b = await runInProcess(
      backupArgs(r, dataDir, '-r', recipient, '--no-default-excludes', ...NO_SQL, '--json'),
      {env},
    )
    expect(b.code, b.stderr).toBe(0)
    const result = JSON.parse(b.stdout)
    expect(result.excluded).toEqual([])
    expect(await restoredTop(r, result.id)).toContain('shared-cache')
  })

  it('the default run records the default excludes; an --exclude outside the data dir is refused (exit 2)', async () => {
    const record = JSON.parse(await readFile(join(repo, 'backups', fullId, 'backup.json'), 'utf8'))
    expect(record.excluded).toEqual(['shared-cache', 'tmp'])
    const bad = await runInProcess(backupArgs(repo, dataDir, '-r', recipient, '--exclude', '../etc', ...service()), {
      env,
    })
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('--exclude ../etc: not a path under the data directory')
    await expectNoStop()
  })
})
