/**
 * What restic, pgBackRest and mo_br users reach for (issue 8 §6), with the CLI's commands on
 * real files (in process, runInProcess; help and line wrapping in processes, as oclif reads the
 * terminal width once, when it loads): `latest`, `verify --all` and its alias `check`, mo_br's --restore_dir, progress
 * lines in a log and --quiet, a list that fits 120 columns, delete saying it once, readers that
 * take no lock, counts of the backup's own file set, and help that flows and says it once.
 */
import {mkdir, readFile, writeFile} from 'node:fs/promises'
import {hostname} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {excludeList} from '../../src/lib/backup/backup.js'
import {backupArgs, restoreArgs} from '../helpers/args.js'
import {optionsFor, takeBackup} from '../helpers/backup.js'
import {runCli, runInProcess, tempDir} from '../helpers/cli.js'
import {makeSmallDataDir} from '../helpers/fixtures.js'

let tmp: {cleanup: () => Promise<void>; path: string}

/** Nothing answers SQL on port 1: the cold-backup and restore probes find no running service. */
const NO_SQL = ['--port', '1']

async function backup(repo: string, dataDir: string, ...more: string[]): Promise<string> {
  const r = await runInProcess(backupArgs(repo, dataDir, '--no-encrypt', ...NO_SQL, ...more))
  expect(r.code, r.stderr).toBe(0)
  return r.stdout.trim()
}

/**
 * A backup taken in process by the flow `br backup` runs (unencrypted, no service): no CLI run
 * (~0.5 CPU-s) for the tests whose point is what comes after a backup. The backups whose own
 * output is checked (--base latest, --quiet, the progress lines) are CLI runs.
 */
async function localBackup(
  repo: string,
  dataDir: string,
  type: 'full' | 'incremental' = 'full',
  exclude: string[] = [],
): Promise<string> {
  return (await takeBackup(optionsFor(dataDir, repo, {exclude: excludeList(exclude, {defaults: true}), type}))).id
}

beforeAll(async () => {
  tmp = await tempDir('moctl-br-ux-')
})

afterAll(async () => {
  await tmp.cleanup()
})

describe('latest', () => {
  let repo: string
  let dirA: string
  let dirB: string
  const ids: Record<string, string> = {}

  beforeAll(async () => {
    repo = join(tmp.path, 'latest-repo')
    dirA = join(tmp.path, 'latest-a')
    dirB = join(tmp.path, 'latest-b')
    await makeSmallDataDir(dirA, {seed: 1})
    await makeSmallDataDir(dirB, {seed: 2})
    ids.fullA = await localBackup(repo, dirA)
    ids.incA = await localBackup(repo, dirA, 'incremental')
    ids.fullB = await localBackup(repo, dirB)
    // A damaged record that sorts after every real id: it must never be latest.
    await mkdir(join(repo, 'backups', 'ffffffff-ffff-7fff-bfff-ffffffffffff'), {recursive: true})
    await writeFile(join(repo, 'backups', 'ffffffff-ffff-7fff-bfff-ffffffffffff', 'backup.json'), '{not json')
  })

  it('verify latest is the newest complete backup of the repository, never a damaged one', async () => {
    const r = await runInProcess(['br', 'verify', 'latest', '--path', repo, '--quick', '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({id: ids.fullB, ok: true})
    // The damaged one may be the backup meant (a newer version's record): it is named.
    expect(r.stderr).toMatch(
      new RegExp(
        `Warning: latest is ${ids.fullB}, but a newer backup could not be read: backup ffffffff-ffff-7fff-bfff-ffffffffffff: backup\\.json is not valid JSON`,
      ),
    )
  })

  it("restore latest is the newest backup of the target data dir, not the repository's", async () => {
    const r = await runInProcess(restoreArgs('latest', repo, dirA, '--force', '--dry-run', '--json', ...NO_SQL))
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({id: ids.incA})
  })

  it('restore latest into another path: the newest backup when the repository holds one data dir, refused when it holds several', async () => {
    const single = join(tmp.path, 'single-repo')
    const source = join(tmp.path, 'single-data')
    await makeSmallDataDir(source)
    const made = await localBackup(single, source)
    const elsewhere = join(tmp.path, 'dr-host', 'mo-data')
    const args = ['br', 'restore', 'latest', '--data-dir', elsewhere, '--dry-run', '--json', ...NO_SQL]
    const r = await runInProcess([...args, '--path', single])
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({id: made})
    const several = await runInProcess([...args, '--path', repo])
    expect(several.code, several.stdout).toBe(2)
    expect(JSON.parse(several.stdout).error.message).toContain('nothing is latest')
  })

  it("backup --base latest builds on the newest backup of --data-dir; mo_br's --restore_dir filesystem is accepted", async () => {
    const r = await runInProcess(
      backupArgs(repo, dirB, '--no-encrypt', '--type', 'incremental', '--base', 'latest', '--json', ...NO_SQL),
    )
    expect(r.code, r.stderr).toBe(0)
    const record = JSON.parse(r.stdout)
    expect(record).toMatchObject({base: ids.fullB, chain: [ids.fullB, record.id]})
    ids.incB = record.id
    const restoreDir = await runInProcess([
      'br',
      'restore',
      'latest',
      '--restore_dir',
      'filesystem',
      '--path',
      repo,
      '--data-dir',
      dirB,
      '--force',
      '--dry-run',
      '--json',
      ...NO_SQL,
    ])
    expect(restoreDir.code, restoreDir.stderr).toBe(0)
    expect(JSON.parse(restoreDir.stdout)).toMatchObject({id: ids.incB})
  })

  it('latest of a data dir with no backup is a usage error naming it; delete latest deletes the newest', async () => {
    const none = await runInProcess(restoreArgs('latest', repo, join(tmp.path, 'elsewhere'), '--dry-run', ...NO_SQL))
    expect(none.code).toBe(2)
    expect(none.stderr).toContain(`Error: no complete backup of ${join(tmp.path, 'elsewhere')} in ${repo}`)
    // The damaged record could be an incremental on top of anything: delete it first.
    const damaged = await runInProcess(['br', 'delete', 'ffffffff-ffff-7fff-bfff-ffffffffffff', '--path', repo])
    expect(damaged.code, damaged.stderr).toBe(0)
    const del = await runInProcess(['br', 'delete', 'latest', '--path', repo])
    expect(del.code, del.stderr).toBe(0)
    expect(del.stdout).toBe(`deleted ${ids.incB}\n`)
    // Said once: on stdout, not again on stderr.
    expect(del.stderr).not.toContain('deleted')
  })
})

describe('verify --all and check', () => {
  let repo: string
  const ids: string[] = []

  beforeAll(async () => {
    repo = join(tmp.path, 'all-repo')
    const dir = join(tmp.path, 'all-data')
    await makeSmallDataDir(dir)
    ids.push(await localBackup(repo, dir), await localBackup(repo, dir, 'incremental'), await localBackup(repo, dir))
    // The middle backup's archive: one byte flipped.
    const archive = join(repo, 'backups', ids[1], 'data.tar.zst')
    const bytes = await readFile(archive)
    bytes[Math.floor(bytes.length / 2)] ^= 0xff
    await writeFile(archive, bytes)
  })

  it('checks every backup, one line each, and exits 3 when one is bad', async () => {
    for (const quick of [[], ['--quick']]) {
      const r = await runInProcess(['br', 'verify', '--all', '--path', repo, ...quick])
      expect(r.code, r.stderr).toBe(3)
      const lines = r.stdout.trimEnd().split('\n')
      expect(lines).toHaveLength(3)
      expect(lines[0]).toMatch(new RegExp(`^${ids[0]}  ok \\(`))
      expect(lines[1]).toMatch(new RegExp(`^${ids[1]}  backup ${ids[1]}: .*(does not match|SHA-256)`))
      // The third is a full backup of its own: fine.
      expect(lines[2]).toMatch(new RegExp(`^${ids[2]}  ok \\(`))
      expect(r.stderr).toContain('Error: 1 of 3 backups failed verification')
    }
  })

  it('--json gives an array of per-backup results, exit 3; `br check` is the same command', async () => {
    const r = await runInProcess(['br', 'check', '--all', '--quick', '--path', repo, '--json'])
    expect(r.code, r.stderr).toBe(3)
    const results = JSON.parse(r.stdout)
    expect(results.map((o: {id: string; ok: boolean}) => [o.id, o.ok])).toEqual([
      [ids[0], true],
      [ids[1], false],
      [ids[2], true],
    ])
    expect(results[1].error).toMatchObject({code: 'integrity', exitCode: 3})
    const good = await runInProcess(['br', 'check', ids[2], '--path', repo, '--json'])
    expect(good.code, good.stderr).toBe(0)
    expect(JSON.parse(good.stdout)).toMatchObject({id: ids[2], ok: true})
  })

  it('refuses neither an id nor --all, and both', async () => {
    const neither = await runInProcess(['br', 'verify', '--path', repo])
    expect(neither.code).toBe(2)
    expect(neither.stderr).toContain('Error: no backup named')
    const both = await runInProcess(['br', 'verify', ids[0], '--all', '--path', repo])
    expect(both.code).toBe(2)
  })
})

describe('progress without a terminal', () => {
  const STEP_LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ([^:]+): (.*)$/

  it('logs one timestamped start and end line per step that runs, no skipped step, no progress flood', async () => {
    const repo = join(tmp.path, 'log-repo')
    const dir = join(tmp.path, 'log-data')
    await makeSmallDataDir(dir)
    const r = await runInProcess(backupArgs(repo, dir, '--no-encrypt', ...NO_SQL))
    expect(r.code, r.stderr).toBe(0)
    // Warnings aside, every line is a step's.
    const lines = r.stderr
      .trimEnd()
      .split('\n')
      .filter((l) => !l.startsWith('Warning: '))
    for (const line of lines) expect(line).toMatch(STEP_LINE)
    const started = lines.filter((l) => l.endsWith(': started')).map((l) => STEP_LINE.exec(l)![1])
    const done = lines.filter((l) => / done in \d/.test(l)).map((l) => STEP_LINE.exec(l)![1])
    expect(started).toEqual([
      'Check paths and service',
      'Open repository',
      'Lock the data directory',
      'Check data directory',
      'Scan data directory',
      'Pack, compress and encrypt',
      'Publish',
    ])
    expect(done).toEqual(started)
    // Skipped steps (the base of a full, the service, MO's BACKUP, the clone) are not shown.
    for (const skipped of ['Find the base backup', 'Stop service', 'Start service', "Run MO's BACKUP", 'Clone'])
      expect(r.stderr).not.toContain(skipped)
    expect(r.stderr).not.toContain('SKIPPED')
    // A short backup: no progress line at all (at most one every 10 s); each step says what it did.
    expect(lines.filter((l) => l.includes('%'))).toEqual([])
    expect(lines.length).toBeLessThanOrEqual(started.length * 3)
  })

  it('--quiet prints no progress; warnings still go to stderr', async () => {
    const repo = join(tmp.path, 'quiet-repo')
    const dir = join(tmp.path, 'quiet-data')
    await makeSmallDataDir(dir)
    const id = await backup(repo, dir, '--quiet')
    const r = await runInProcess(['br', 'verify', id, '--path', repo, '--quiet'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe(`backup ${id}: ok (every file)\n`)
    // No signer given: the authenticity warning, one line, and nothing else.
    expect(r.stderr).toMatch(/^Warning: [^\n]+\n$/)
  })
})

describe('list', () => {
  it('fits 120 columns with a long repository path; --wide has every column; a damaged record is a row in both', async () => {
    const repo = join(tmp.path, 'a-repository-path-that-is-long'.repeat(4), 'repo')
    const dir = join(tmp.path, 'list-data')
    await makeSmallDataDir(dir)
    const full = await localBackup(repo, dir)
    const inc = await localBackup(repo, dir, 'incremental')
    const damaged = '01900000-0000-7000-8000-000000000000'
    await mkdir(join(repo, 'backups', damaged), {recursive: true})
    await writeFile(join(repo, 'backups', damaged, 'backup.json'), '[]')
    const r = await runInProcess(['br', 'list', '--path', repo])
    expect(r.code, r.stderr).toBe(0)
    const lines = r.stdout.trimEnd().split('\n')
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThanOrEqual(120)
    expect(lines).toHaveLength(4)
    expect(lines[1]).toMatch(new RegExp(`^${damaged} +DAMAGED`))
    expect(lines[2]).toMatch(
      new RegExp(`^${full} +full +- +\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d +\\S+ +\\S+ \\S+$`),
    )
    expect(lines[3]).toMatch(new RegExp(`^${inc} +incremental +${full.slice(0, 13)} `))
    const wide = await runInProcess(['br', 'list', '--path', repo, '--wide'])
    expect(wide.code, wide.stderr).toBe(0)
    expect(wide.stdout).toContain(repo)
    expect(wide.stdout).toContain(`incremental (base ${full})`)
    expect(wide.stdout).toMatch(new RegExp(`${damaged} .*DAMAGED`))
  })
})

describe('readers take no lock', () => {
  it('list, verify --quick, prune --dry-run and delete --dry-run work while a writer holds lock.json', async () => {
    const repo = join(tmp.path, 'locked-repo')
    const dir = join(tmp.path, 'locked-data')
    await makeSmallDataDir(dir)
    const id = await localBackup(repo, dir)
    // A live writer on this host: this test process.
    const holder = {
      command: 'br backup',
      host: hostname(),
      pid: process.pid,
      startedAt: new Date().toISOString(),
      token: 'held-by-the-test',
    }
    await writeFile(join(repo, 'lock.json'), JSON.stringify(holder))
    for (const args of [
      ['list'],
      ['verify', id, '--quick'],
      ['prune', '--keep-last', '1', '--dry-run'],
      ['delete', id, '--dry-run'],
    ]) {
      const r = await runInProcess(['br', ...args, '--path', repo])
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0)
    }

    // The writers themselves still wait their turn.
    const prune = await runInProcess(['br', 'prune', '--keep-last', '1', '--path', repo])
    expect(prune.code).toBe(4)
    expect(JSON.parse(await readFile(join(repo, 'lock.json'), 'utf8'))).toEqual(holder)
  })
})

describe("counts are the backup's own file set", () => {
  it('restore --json and verify --json of an incremental count its files, not the sum over the chain', async () => {
    const repo = join(tmp.path, 'count-repo')
    const dir = join(tmp.path, 'count-data')
    await makeSmallDataDir(dir)
    const full = await localBackup(repo, dir, 'full', ['shared-cache'])
    await writeFile(join(dir, 'local', 'hk_data'), 'changed since the full backup\n')
    const inc = await localBackup(repo, dir, 'incremental', ['shared-cache'])
    const record = JSON.parse(await readFile(join(repo, 'backups', inc, 'backup.json'), 'utf8'))
    const files = record.counts.files as number
    expect(files).toBe(JSON.parse(await readFile(join(repo, 'backups', full, 'backup.json'), 'utf8')).counts.files)
    const verify = await runInProcess(['br', 'verify', inc, '--path', repo, '--json'])
    expect(verify.code, verify.stderr).toBe(0)
    expect(JSON.parse(verify.stdout)).toMatchObject({bytes: record.sizes.total, files})
    const restore = await runInProcess(restoreArgs(inc, repo, join(tmp.path, 'count-restored'), '--json', ...NO_SQL))
    expect(restore.code, restore.stderr).toBe(0)
    expect(JSON.parse(restore.stdout)).toMatchObject({files, id: inc})
  })
})

describe('help', () => {
  /** Wide enough that anything broken in the middle of a sentence was broken by us, not by oclif. */
  const WIDE = {OCLIF_COLUMNS: '2000'}
  /** Each command's --help, run once for the tests below. */
  const help: Record<string, Awaited<ReturnType<typeof runCli>>> = {}

  beforeAll(async () => {
    for (const command of ['backup', 'restore', 'verify', 'list', 'delete', 'prune', 'cleanup'])
      help[command] = await runCli(['br', command, '--help'], {env: WIDE})
  })

  it('descriptions flow (no hard wraps), an env var is named once, --path is not "(required)"', async () => {
    for (const r of Object.values(help)) {
      expect(r.code, r.stderr).toBe(0)
      const description = /\nDESCRIPTION\n([\s\S]*?)\n[A-Z]+\n/.exec(r.stdout)![1]
      // Each paragraph is one line: no line ends in the middle of a sentence.
      for (const line of description.split('\n').slice(1)) expect(line.trim()).toMatch(/^$|[.:)`]$/)
      expect(r.stdout).not.toMatch(/\(env MOCTL_BR_REPO\)|\(env MOCTL_BR_DATA_DIR\)|\(env MO_PASSWORD\)/)
      expect(r.stdout).not.toMatch(/--path=<value>.*\(required\)/)
    }

    const {restore} = help
    expect(restore.stdout).toContain(
      'beside the target first; only then is the service stopped, the directories swapped',
    )
    expect(restore.stdout.match(/MOCTL_BR_REPO/g)).toHaveLength(1)
    expect(restore.stdout).toContain('--restore_path')
    expect(restore.stdout).toContain('--restore-dir=<option>')
  })

  it('br --help has the exit codes, and the mo_br alias `br check` shows', async () => {
    const r = await runCli(['br', '--help'], {env: WIDE})
    expect(r.code, r.stderr).toBe(0)
    for (const line of ['0    ok', '2    bad usage', '3    integrity failure', '4    repository', '130  interrupted'])
      expect(r.stdout).toContain(line)
    expect(r.stdout).toMatch(/br check +Check that a backup can be restored/)
    const {verify} = help
    expect(verify.stdout).toMatch(/ALIASES\n +\$ moctl br check/)
  })

  it('a missing --path is one usage error naming the three ways to give it; the config gives it', async () => {
    const configHome = join(tmp.path, 'config-home')
    const r = await runInProcess(['br', 'list'], {env: {XDG_CONFIG_HOME: configHome}})
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(
      'Error: missing --path: the repository: a local directory or s3://BUCKET/PREFIX\n' +
        'Hint: pass --path, set MOCTL_BR_REPO, or keep a default with `moctl br config set path …`\n',
    )
    const repo = join(tmp.path, 'config-repo')
    const dir = join(tmp.path, 'config-data')
    await makeSmallDataDir(dir)
    await localBackup(repo, dir)
    const set = await runInProcess(['br', 'config', 'set', 'path', repo], {env: {XDG_CONFIG_HOME: configHome}})
    expect(set.code, set.stderr).toBe(0)
    const listed = await runInProcess(['br', 'list', '--json'], {env: {XDG_CONFIG_HOME: configHome}})
    expect(listed.code, listed.stderr).toBe(0)
    expect(JSON.parse(listed.stdout)).toHaveLength(1)
  })

  it('a warning is one line, however long, never wrapped by oclif', async () => {
    const repo = join(tmp.path, 'warn-repo-with-a-long-name-so-that-the-warning-is-long'.repeat(3))
    const dir = join(tmp.path, 'warn-data')
    await makeSmallDataDir(dir)
    const id = await localBackup(repo, dir)
    const r = await runCli(['br', 'verify', id, '--path', repo, '--quick'], {env: {COLUMNS: '40', OCLIF_COLUMNS: '40'}})
    expect(r.code, r.stderr).toBe(0)
    const warnings = r.stderr.split('\n').filter((l) => l.startsWith('Warning: '))
    expect(warnings).toHaveLength(1)
    expect(warnings[0].length).toBeGreaterThan(80)
    expect(r.stderr).not.toContain(' › ')
  })
})
