/**
 * The CLI on real files: key generate, backup, list, verify, restore with --service none and
 * command, and every bad input the foundation issue names. Each test asserts stdout, stderr and
 * the exit code separately. The core runs are processes (bin/run.js): key generate, backup, list,
 * verify and restore, and exit codes 0, 2, 3 and 5; the other runs are in process (runInProcess),
 * as their point is what the command decides and prints. The MariaDB round trip is in
 * restore-mariadb.test.ts.
 */
import {chmod, mkdir, open, readdir, readFile, stat, truncate, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {
  backupArgs,
  encryptTo,
  NO_SQL,
  readWith,
  restoreArgs,
  serviceArgs,
  suiteKey,
  type SuiteKey,
} from '../helpers/args.js'
import {runCli, runInProcess, tempDir, type TempDir} from '../helpers/cli.js'
import {makeSmallDataDir} from '../helpers/fixtures.js'
import {skipNote} from '../helpers/needs.js'
import {canMount, NOT_ROOT, tmpfsMounts} from '../helpers/tmpfs.js'
import {treeHashes} from '../helpers/tree.js'

let tmp: TempDir
let dataDir: string
let repo: string
let keyFile: string
let recipient: string
/** the key the CLI generated above: every backup here is encrypted to it */
let key: SuiteKey
let backupId: string

function withoutCache(tree: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(tree).filter(([k]) => !k.startsWith('shared-cache')))
}

/** The suite's backup restored over `target` with these service flags; nothing answers SQL. */
const restoreOver = (run: typeof runCli, target: string, ...service: string[]) =>
  run(restoreArgs(backupId, repo, target, ...readWith(key), '--force', ...service, ...NO_SQL))

beforeAll(async () => {
  tmp = await tempDir()
  dataDir = join(tmp.path, 'mo-data')
  repo = join(tmp.path, 'repo')
  keyFile = join(tmp.path, 'backup.key')
  await makeSmallDataDir(dataDir)
  const generated = await runCli(['br', 'key', 'generate', '--output', keyFile])
  expect(generated.code, generated.stderr).toBe(0)
  recipient = generated.stdout.trim()
  key = {identity: keyFile, recipient}
  const backup = await runCli(backupArgs(repo, dataDir, ...encryptTo(key), ...NO_SQL))
  expect(backup.code, backup.stderr).toBe(0)
  backupId = backup.stdout.trim()
})

afterAll(async () => {
  await tmp?.cleanup()
})

describe('key generate', () => {
  it('writes a 0600 identity and prints its age1 recipient', async () => {
    expect(recipient).toMatch(/^age1[0-9a-z]{58}$/)
    const info = await stat(keyFile)
    expect(info.mode & 0o777).toBe(0o600)
    expect(await readFile(keyFile, 'utf8')).toMatch(/^AGE-SECRET-KEY-1[0-9A-Z]+$/m)
  })

  it('refuses to overwrite an existing key (exit 2)', async () => {
    const before = await readFile(keyFile, 'utf8')
    const r = await runCli(['br', 'key', 'generate', '--output', keyFile])
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr).toContain('already exists')
    expect(await readFile(keyFile, 'utf8')).toBe(before)
  })
})

describe('backup, list, verify', () => {
  it('prints a UUIDv7 id and lays out the repository as designed', async () => {
    expect(backupId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect((await readdir(join(repo, 'backups', backupId))).sort()).toEqual([
      'backup.json',
      'data.tar.zst.age',
      'manifest.age',
    ])
    const record = await readFile(join(repo, 'backups', backupId, 'backup.json'), 'utf8')
    // The record must not leak file names to whoever holds the repository.
    expect(record).not.toContain('hk_data')
    expect(record).not.toContain('meta_0-100')
    expect(JSON.parse(record)).toMatchObject({
      chain: [backupId],
      encryption: {recipients: [recipient], type: 'recipients'},
      id: backupId,
      type: 'full',
    })
  })

  it('lists the backup compactly, with mo_br columns under --wide, and as JSON', async () => {
    const table = await runCli(['br', 'list', '--path', repo])
    expect(table.code, table.stderr).toBe(0)
    const [head, row] = table.stdout.split('\n')
    for (const col of ['ID', 'TYPE', 'BASE', 'CREATED', 'DURATION', 'SIZE']) expect(head).toContain(col)
    expect(row).toContain(backupId)
    expect(row).toContain('full')
    const wide = await runInProcess(['br', 'list', '--path', repo, '--wide'])
    expect(wide.code, wide.stderr).toBe(0)
    const [wideHead, wideRow] = wide.stdout.split('\n')
    for (const col of ['ID', 'SIZE', 'PATH', 'AT TIME', 'DURATION', 'COMPLETE TIME', 'BACKUPTS', 'BACKUPTYPE'])
      expect(wideHead).toContain(col)
    expect(wideRow).toContain(backupId)
    expect(wideRow).toContain(repo)
    const json = await runInProcess(['br', 'list', '--path', repo, '--json'])
    expect(json.code).toBe(0)
    const list = JSON.parse(json.stdout)
    expect(list).toHaveLength(1)
    expect(list[0]).toMatchObject({base: null, id: backupId, type: 'full'})
    expect(list[0].counts.files).toBeGreaterThan(10)
  })

  it('verifies every file with the identity, and --quick without any key', async () => {
    const full = await runCli(['br', 'verify', backupId, '--path', repo, '--identity', keyFile, '--json'])
    expect(full.code, full.stderr).toBe(0)
    expect(JSON.parse(full.stdout)).toMatchObject({checked: 'every file', id: backupId, ok: true})
    const quick = await runInProcess(['br', 'verify', backupId.slice(0, 13), '--path', repo, '--quick'])
    expect(quick.code, quick.stderr).toBe(0)
    expect(quick.stdout).toContain(`backup ${backupId}: ok`)
  })

  it('verifies and restores with --parallelism 1 and 2, naming the decompressor in --json', async () => {
    const v = await runInProcess([
      'br',
      'verify',
      backupId,
      '--path',
      repo,
      ...readWith(key),
      '--parallelism',
      '2',
      '--json',
    ])
    expect(v.code, v.stderr).toBe(0)
    expect(JSON.parse(v.stdout).decompressor).toMatch(/2 decompression worker threads/)
    const target = join(tmp.path, 'parallelism-1')
    const r = await runInProcess([
      ...restoreArgs(backupId, repo, target, ...readWith(key), ...NO_SQL),
      '--parallelism',
      '1',
      '--json',
    ])
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout).decompressor).toMatch(/1 decompression worker thread\b/)
    expect(await treeHashes(target)).toEqual(withoutCache(await treeHashes(dataDir)))
  })

  it('keeps the cache directory out of the backup', async () => {
    const target = join(tmp.path, 'check-excl')
    const r = await runInProcess(restoreArgs(backupId, repo, target, ...readWith(key), ...NO_SQL))
    expect(r.code, r.stderr).toBe(0)
    expect(await treeHashes(target)).toEqual(withoutCache(await treeHashes(dataDir)))
  })
})

describe('restore with --service none', () => {
  it('restores into a fresh directory byte for byte, with --restore_path as mo_br names it', async () => {
    const holder = join(tmp.path, 'fresh-host')
    const r = await runCli([
      'br',
      'restore',
      backupId,
      '--path',
      repo,
      '--restore_path',
      holder,
      '--identity',
      keyFile,
      '--port',
      '1',
      '--json',
    ])
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({dataDir: join(holder, 'mo-data'), id: backupId, previousDataDir: null})
    expect(await treeHashes(join(holder, 'mo-data'))).toEqual(withoutCache(await treeHashes(dataDir)))
    const mtime = (await stat(join(holder, 'mo-data', 'local', 'hk_data'))).mtimeMs
    expect(mtime).toBe((await stat(join(dataDir, 'local', 'hk_data'))).mtimeMs)
  })

  it('refuses a non-empty target without --force (exit 2) and keeps the old one with --force', async () => {
    const target = join(tmp.path, 'occupied')
    await mkdir(target)
    await writeFile(join(target, 'precious'), 'old data')
    const refused = await runInProcess(restoreArgs(backupId, repo, target, ...readWith(key), ...NO_SQL))
    expect(refused.code).toBe(2)
    expect(refused.stderr).toContain('is not empty')
    expect(refused.stderr).toContain('--force')
    expect(await readdir(target)).toEqual(['precious'])
    const forced = await runInProcess(restoreArgs(backupId, repo, target, ...readWith(key), '--force', ...NO_SQL))
    expect(forced.code, forced.stderr).toBe(0)
    expect(await readFile(join(`${target}.before-${backupId}`, 'precious'), 'utf8')).toBe('old data')
    expect(await treeHashes(target)).toEqual(withoutCache(await treeHashes(dataDir)))
  })
})

describe('restore --dry-run', () => {
  it('checks, prints what it would stop, swap and start, and changes nothing', async () => {
    const target = join(tmp.path, 'dry')
    await mkdir(target)
    await writeFile(join(target, 'live'), 'live data')
    const log = join(tmp.path, 'dry.log')
    const args = restoreArgs(
      backupId,
      repo,
      target,
      ...readWith(key),
      '--force',
      ...serviceArgs(`echo stop >> '${log}'`, `echo start >> '${log}'`),
      ...NO_SQL,
      '--dry-run',
    )
    const r = await runInProcess(args)
    expect(r.code, r.stderr).toBe(0)
    const lines = r.stdout.trim().split('\n')
    expect(lines[0]).toBe(`would restore ${backupId} (full) into ${target}:`)
    expect(lines[1]).toMatch(
      new RegExp(`^  1\\. extract \\d+ files .* free\\) from one archive into .*\\.dry\\.restore-${backupId}`),
    )
    expect(lines[2]).toBe(`  2. stop the service (command: echo stop >> '${log}' / echo start >> '${log}')`)
    expect(lines[3]).toContain(`move ${target} to ${target}.before-${backupId}, then`)
    expect(lines[4]).toBe(
      '  4. start the service and wait for SQL on 127.0.0.1:1 (up to 2m0s), then list its databases',
    )
    expect(lines[5]).toBe(`  5. keep the previous data in ${target}.before-${backupId}`)
    expect(lines.at(-1)).toBe('nothing was changed (--dry-run)')
    // Nothing ran, nothing moved, nothing was extracted.
    await expect(stat(log)).rejects.toThrow(/ENOENT/)
    expect(await readdir(target)).toEqual(['live'])
    expect((await readdir(tmp.path)).filter((n) => n.startsWith('.dry') || n.startsWith('dry.'))).toEqual([])

    const json = await runInProcess([...args, '--discard-old', '--json'])
    expect(json.code, json.stderr).toBe(0)
    const plan = JSON.parse(json.stdout)
    expect(plan).toMatchObject({
      chain: [backupId],
      dataDir: target,
      dryRun: true,
      id: backupId,
      previousDataDir: `${target}.before-${backupId}`,
      service: expect.stringContaining('command: echo stop'),
    })
    expect(plan.freeBytes).toBeGreaterThan(plan.bytes)
    expect(plan.steps.at(-1)).toBe(`delete ${target}.before-${backupId} once the service answers SQL (--discard-old)`)
    expect(await readdir(target)).toEqual(['live'])
  })

  it('fails as the restore would: a non-empty target without --force (exit 2), a wrong key (exit 3)', async () => {
    const target = join(tmp.path, 'dry-occupied')
    await mkdir(target)
    await writeFile(join(target, 'live'), 'live data')
    const base = restoreArgs(backupId, repo, target, ...NO_SQL, '--dry-run')
    const occupied = await runInProcess([...base, ...readWith(key)])
    expect(occupied.code).toBe(2)
    expect(occupied.stderr).toContain(`restore target ${target} is not empty`)
    const otherKey = await suiteKey(tmp.path, 'dry-other.key')
    const wrong = await runInProcess([...base, ...readWith(otherKey), '--force'])
    expect(wrong.code).toBe(3)
    expect(await readdir(target)).toEqual(['live'])
  })
})

describe('restore onto a filesystem without room for the backup', () => {
  // Mounting a small tmpfs needs root, as the CI machines have.
  const root = canMount()
  const mounts = tmpfsMounts()
  let small = ''
  // Nothing to mount where the test is skipped (not root, off CI).
  beforeAll(async () => {
    if (root) small = await mounts.mount(join(tmp.path, 'small-fs'), '256k')
  })
  afterAll(() => mounts.unmountAll())

  it.skipIf(!root)(
    `refuses before anything is extracted or stopped, naming the sizes (exit 2)${skipNote(root, NOT_ROOT)}`,
    async () => {
      const target = join(small, 'mo-data')
      const log = join(tmp.path, 'small.log')
      const r = await runInProcess(
        restoreArgs(
          backupId,
          repo,
          target,
          ...readWith(key),
          ...serviceArgs(`echo stop >> '${log}'`, 'true'),
          ...NO_SQL,
        ),
      )
      expect(r.code).toBe(2)
      expect(r.stderr).toMatch(
        new RegExp(`Error: not enough space to restore ${backupId} beside ${target}: it needs .* free`),
      )
      expect(await readdir(small)).toEqual([])
      await expect(stat(log)).rejects.toThrow(/ENOENT/)
    },
  )
})

describe('passphrase backups', () => {
  it('backs up and restores with a passphrase file; a wrong passphrase is exit 3', async () => {
    const pass = join(tmp.path, 'pass')
    await writeFile(pass, 'correct horse battery staple\n')
    const passRepo = join(tmp.path, 'pass-repo')
    const backup = await runInProcess(backupArgs(passRepo, dataDir, '--passphrase-file', pass, ...NO_SQL))
    expect(backup.code, backup.stderr).toBe(0)
    const id = backup.stdout.trim()
    const target = join(tmp.path, 'pass-target')
    const restored = await runInProcess(restoreArgs(id, passRepo, target, ...NO_SQL), {
      env: {MOCTL_BR_PASSPHRASE: 'correct horse battery staple'},
    })
    expect(restored.code, restored.stderr).toBe(0)
    expect(await treeHashes(target)).toEqual(withoutCache(await treeHashes(dataDir)))
    const wrong = join(tmp.path, 'wrong-pass')
    await writeFile(wrong, 'incorrect horse\n')
    const r = await runInProcess(['br', 'verify', id, '--path', passRepo, '--passphrase-file', wrong])
    expect(r.code).toBe(3)
    expect(r.stdout).toBe('')
  })
})

// Bad input decided in src/lib is asserted in process, message and hint (unit/lib: repo,
// secrets, backup/data-dir); here one CLI run per exit code proves the mapping.
describe('bad input', () => {
  it('an unknown id names the id and the list command (exit 2)', async () => {
    const r = await runInProcess(['br', 'verify', 'ffffffff', '--path', repo, '--quick'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('ffffffff')
    expect(r.stderr).toContain('moctl br list')
  })

  it('--parallelism outside 1..64 is exit 2 for restore and verify, before anything is read or made', async () => {
    const target = join(tmp.path, 'parallelism-target')
    for (const bad of ['0', '65']) {
      const v = await runInProcess(['br', 'verify', backupId, '--path', repo, ...readWith(key), '--parallelism', bad])
      expect(v.code).toBe(2)
      expect(v.stderr).toContain(`--parallelism ${bad} is not a whole number from 1 to 64`)
      const r = await runInProcess([
        ...restoreArgs(backupId, repo, target, ...readWith(key), ...NO_SQL),
        '--parallelism',
        bad,
      ])
      expect(r.code).toBe(2)
      expect(r.stderr).toContain('--parallelism')
      await expect(stat(target)).rejects.toThrow()
    }
  })

  it('a wrong identity is an integrity failure (exit 3) and touches nothing', async () => {
    const otherKey = await suiteKey(tmp.path, 'other.key')
    const target = join(tmp.path, 'wrong-key-target')
    const r = await runCli(restoreArgs(backupId, repo, target, ...readWith(otherKey), ...NO_SQL))
    expect(r.code).toBe(3)
    expect(r.stderr.toLowerCase()).toContain('identity')
    await expect(stat(target)).rejects.toThrow()
    expect((await readdir(tmp.path)).filter((n) => n.includes('.restore-'))).toEqual([])
  })
})

describe('damaged archives', () => {
  let damagedRepo: string

  beforeAll(async () => {
    damagedRepo = join(tmp.path, 'damaged-repo')
    const r = await runInProcess(backupArgs(damagedRepo, dataDir, ...encryptTo(key), ...NO_SQL))
    expect(r.code, r.stderr).toBe(0)
  })

  async function copyBackupWith(damage: (file: string) => Promise<void>): Promise<string> {
    const list = JSON.parse((await runInProcess(['br', 'list', '--path', damagedRepo, '--json'])).stdout)
    const {id} = list[0]
    const {cp} = await import('node:fs/promises')
    const copy = join(tmp.path, `damaged-${Math.random().toString(36).slice(2)}`)
    await cp(damagedRepo, copy, {recursive: true})
    await damage(join(copy, 'backups', id, 'data.tar.zst.age'))
    return copy
  }

  it('a flipped byte fails verify and restore with exit 3, leaving the target and its data untouched', async () => {
    const copy = await copyBackupWith(async (file) => {
      const {size} = await stat(file)
      const fh = await open(file, 'r+')
      const buf = Buffer.alloc(1)
      await fh.read(buf, 0, 1, Math.floor(size / 2))
      buf[0] ^= 0xff
      await fh.write(buf, 0, 1, Math.floor(size / 2))
      await fh.close()
    })
    const {id} = JSON.parse((await runInProcess(['br', 'list', '--path', copy, '--json'])).stdout)[0]
    const quick = await runInProcess(['br', 'verify', id, '--path', copy, '--quick'])
    expect(quick.code).toBe(3)
    expect(quick.stderr).toContain(id)
    const full = await runInProcess(['br', 'verify', id, '--path', copy, '--identity', keyFile])
    expect(full.code).toBe(3)
    expect(full.stderr).toContain(id)
    const target = join(tmp.path, 'damaged-target')
    await mkdir(target, {recursive: true})
    await writeFile(join(target, 'live'), 'live data')
    const restore = await runInProcess(restoreArgs(id, copy, target, ...readWith(key), '--force', ...NO_SQL))
    expect(restore.code).toBe(3)
    expect(await readdir(target)).toEqual(['live'])
    expect(
      (await readdir(tmp.path)).filter((n) => n.includes('.restore-') || n.startsWith('damaged-target.before')),
    ).toEqual([])
  })

  it('a truncated archive fails with exit 3 naming the backup', async () => {
    const copy = await copyBackupWith(async (file) => truncate(file, (await stat(file)).size - 100))
    const {id} = JSON.parse((await runInProcess(['br', 'list', '--path', copy, '--json'])).stdout)[0]
    const r = await runInProcess(['br', 'verify', id, '--path', copy, '--identity', keyFile, '--json'])
    expect(r.code).toBe(3)
    const out = JSON.parse(r.stdout)
    expect(out.error.exitCode).toBe(3)
    expect(out.error.message).toContain(id)
  })
})

describe('service commands around a restore', () => {
  it('a failing stop command exits 5 and leaves the old data in place', async () => {
    const target = join(tmp.path, 'stop-fails')
    await mkdir(target)
    await writeFile(join(target, 'live'), 'live data')
    const r = await restoreOver(runCli, target, ...serviceArgs('echo cannot stop >&2; exit 7', 'true'))
    expect(r.code).toBe(5)
    expect(r.stderr).toContain('cannot stop')
    expect(await readdir(target)).toEqual(['live'])
  })

  it('a failing start puts the old data back, starts the service again, and exits 5', async () => {
    const target = join(tmp.path, 'start-fails')
    await mkdir(target)
    await writeFile(join(target, 'live'), 'live data')
    const log = join(tmp.path, 'start-fails.log')
    // The first start fails (as a broken restored data dir would make it); the rollback's start succeeds.
    const script = join(tmp.path, 'start.sh')
    await writeFile(
      script,
      `#!/bin/sh\necho "start $(ls '${target}' | tr '\\n' ' ')" >> '${log}'\nif [ ! -f '${log}.once' ]; then touch '${log}.once'; echo start failed >&2; exit 1; fi\n`,
    )
    await chmod(script, 0o755)
    const r = await restoreOver(
      runInProcess,
      target,
      ...serviceArgs(`echo stop >> '${log}'`, script),
      '--sql-timeout',
      '1',
    )
    expect(r.code).toBe(5)
    expect(await readdir(target)).toEqual(['live'])
    const events = (await readFile(log, 'utf8')).split('\n').filter(Boolean)
    expect(events[0]).toBe('stop')
    expect(events.at(-1)).toBe('start live ')
  })
})
