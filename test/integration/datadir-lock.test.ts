/**
 * One run at a time per data directory, and crashes that say what they left, on real files: the
 * runs that are killed are real processes (bin/run.js), killed with a real SIGKILL; the runs
 * after them, which find what they left, run in process (runInProcess):
 *   - a restore into a symlinked data dir keeps the link and swaps the directory it points to;
 *   - a backup killed during a slow stop: the next backup says the service was stopped by that
 *     backup, which did not finish, with the command that starts it;
 *   - a restore killed during its stop leaves its staging dir; a --clone backup killed while the
 *     service starts leaves its clone: br cleanup (never while the run lives: exit 4), the next
 *     restore or backup, and prune remove them;
 *   - a restore killed after both renames: each later run says where the previous data is and
 *     how to put it back, and nothing removes it; one dead between its two renames (the lock as
 *     it leaves it, with a pid that is gone) is undone by the next run.
 * Data dirs: test/helpers/fixtures.ts makeSmallDataDir. Two restores at once, and the seal of the
 * staged tree, need a service that really stops and starts: restore-crash-mariadb.test.ts.
 */
import {spawn, spawnSync} from 'node:child_process'
import {lstat, mkdir, readdir, readlink, rename, symlink, writeFile} from 'node:fs/promises'
import {hostname} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {backupArgs, NO_SQL, restoreArgs, serviceArgs} from '../helpers/args.js'
import {optionsFor, takeBackup} from '../helpers/backup.js'
import {RUN, runCli, runInProcess, tempDir} from '../helpers/cli.js'
import {makeSmallDataDir} from '../helpers/fixtures.js'
import {treeHashes} from '../helpers/tree.js'

let tmp: {cleanup: () => Promise<void>; path: string}
let small: string
let repo: string
let id: string

beforeAll(async () => {
  tmp = await tempDir('moctl-br-datadir-')
  small = join(tmp.path, 'mo-data')
  await makeSmallDataDir(small)
  repo = join(tmp.path, 'repo')
  // Taken in process (no CLI run): the restores below are the point.
  id = (await takeBackup(optionsFor(small, repo))).id
})
afterAll(async () => tmp?.cleanup())

/** the CLI with ARGS (from 'br') in its own process group; `reached(text)` resolves once stderr shows it. */
function background(args: string[]) {
  const child = spawn(process.execPath, [RUN, ...args], {detached: true, stdio: ['ignore', 'pipe', 'pipe']})
  let stderr = ''
  const waiters: {resolve: () => void; text: string}[] = []
  child.stderr.on('data', (d) => {
    stderr += d
    for (const w of waiters) if (stderr.includes(w.text)) w.resolve()
  })
  const exited = new Promise<null | number>((resolve) => {
    child.on('close', resolve)
  })
  const reached = (text: string) =>
    new Promise<void>((resolve) => {
      if (stderr.includes(text)) resolve()
      else waiters.push({resolve, text})
    })
  const kill9 = async () => {
    process.kill(-child.pid!, 'SIGKILL')
    return exited
  }

  return {child, exited, kill9, reached, stderr: () => stderr}
}

/**
 * oclif wraps a warning at the terminal width (breaking long paths too), continuing with ' ›   ',
 * and may colour it: compare without colours, continuation marks and whitespace.
 */

const squash = (text: string) =>
  text
    .replaceAll(new RegExp(String.fromCodePoint(27) + String.raw`\[\d+m`, 'g'), '')
    .replaceAll('\n ›', '')
    .replaceAll(/\s+/g, '')
const says = (stderr: string, line: string) => expect(squash(stderr)).toContain(squash(line))
const beside = async (dir: string) => readdir(join(dir, '..'))
/** What a backup of `dir` holds: the tree without the caches backups leave out. */
const backedUp = async (dir: string) =>
  Object.fromEntries(Object.entries(await treeHashes(dir)).filter(([k]) => !/^(shared-cache|tmp)(\/|$)/.test(k)))

describe('one run at a time per data directory', () => {
  it('a symlinked data dir keeps its link: the directory it points to is swapped, .before-<id> beside it', async () => {
    const real = join(tmp.path, 'other-fs', 'mo-data')
    await mkdir(real, {recursive: true})
    await writeFile(join(real, 'old-file'), 'old data')
    const link = join(tmp.path, 'linked', 'mo-data')
    await mkdir(join(link, '..'))
    await symlink(real, link)

    const restore = await runInProcess(restoreArgs(id, repo, link, '--force', '--json'))
    expect(restore.code, restore.stderr).toBe(0)
    expect((await lstat(link)).isSymbolicLink()).toBe(true)
    expect(await readlink(link)).toBe(real)
    expect(await treeHashes(real)).toEqual(await backedUp(small))
    expect(await readdir(`${real}.before-${id}`)).toEqual(['old-file'])
    // Nothing landed beside the link.
    expect(await beside(link)).toEqual(['mo-data'])
  })
})

describe('a killed run says what it left', () => {
  it('a backup killed during a slow stop: the next backup says the service was stopped by it, and how to start it', async () => {
    const dataDir = join(tmp.path, 'killed-backup', 'mo-data')
    await makeSmallDataDir(dataDir, {seed: 5})
    const repoK = join(tmp.path, 'repo-killed-backup')
    const start = `touch ${join(tmp.path, 'killed-backup', 'started')}`
    const killed = background(backupArgs(repoK, dataDir, '--no-encrypt', ...serviceArgs('sleep 30', start), ...NO_SQL))
    await killed.reached('command: sleep 30')
    expect(await killed.kill9()).toBeNull()
    const lock = JSON.parse(spawnSync('cat', [join(dataDir, '..', '.mo-data.moctl-br.lock')]).stdout.toString())
    expect(lock).toMatchObject({backupId: expect.any(String), command: 'br backup', service: {start}})

    const next = await runInProcess(backupArgs(repoK, dataDir, '--no-encrypt', ...NO_SQL))
    expect(next.code, next.stderr).toBe(0)
    const {stderr} = next
    says(
      stderr,
      `the service was stopped by backup ${lock.backupId}, which did not finish (pid ${killed.child.pid} died): it may still be down; start it with: ${start}`,
    )
    says(stderr, `took over a stale lock of br backup (pid ${killed.child.pid}`)
  })

  it("a killed restore's staging dir and a killed --clone backup's clone: removed by cleanup, restore and prune, never while their run lives", async () => {
    const dataDir = join(tmp.path, 'leftovers', 'mo-data')
    await makeSmallDataDir(dataDir, {seed: 6})
    const repoL = join(tmp.path, 'repo-leftovers')
    // Taken in process (no CLI run): the killed runs below are the point.
    const lid = (await takeBackup(optionsFor(dataDir, repoL))).id
    const service = [...serviceArgs('sleep 30', 'true'), ...NO_SQL]

    // A restore killed while the service stops: its verified staging dir stays behind.
    const restore = background(restoreArgs(lid, repoL, dataDir, '--force', ...service))
    await restore.reached('command: sleep 30')
    await restore.kill9()
    const staging = (await beside(dataDir)).filter((n) => n.startsWith(`.mo-data.restore-${lid}-`))
    expect(staging).toHaveLength(1)

    const dry = await runInProcess(['br', 'cleanup', '--data-dir', dataDir, '--dry-run', '--json'])
    expect(dry.code, dry.stderr).toBe(0)
    const [plan] = JSON.parse(dry.stdout)
    expect(plan.removed).toEqual([join(dataDir, '..', staging[0])])
    expect(plan.recovered.join('\n')).toContain(`the service was stopped by restore ${lid}, which did not finish`)
    expect(await beside(dataDir)).toContain(staging[0])

    // The next restore removes it, and says the service was left stopped.
    const next = await runInProcess(restoreArgs(lid, repoL, dataDir, '--force', '--discard-old'))
    expect(next.code, next.stderr).toBe(0)
    says(next.stderr, `the service was stopped by restore ${lid}, which did not finish`)
    says(next.stderr, `removed ${join(dataDir, '..', staging[0])}`)
    expect((await beside(dataDir)).filter((n) => n.includes('.restore-'))).toEqual([])

    // A --clone backup whose start hangs: its clone exists while it runs, and cleanup leaves it alone.
    const clone = background(
      backupArgs(repoL, dataDir, '--no-encrypt', '--clone', ...serviceArgs('true', 'sleep 30'), ...NO_SQL),
    )
    await clone.reached('Start service')
    const clones = (await beside(dataDir)).filter((n) => n.startsWith('.mo-data.clone-'))
    expect(clones).toHaveLength(1)
    // a process: br cleanup's one run as bin/run.js, refused with exit 4 while the backup lives
    const live = await runCli(['br', 'cleanup', '--data-dir', dataDir])
    expect(live.code, live.stderr).toBe(4)
    expect(live.stderr).toContain(`data directory ${dataDir} is locked by br backup`)
    expect(await beside(dataDir)).toContain(clones[0])

    // Killed: prune (which knows the data dir from the repository) removes the clone.
    await clone.kill9()
    const prune = await runInProcess(['br', 'prune', '--path', repoL, '--keep-last', '5'])
    expect(prune.code, prune.stderr).toBe(0)
    expect(prune.stdout).toContain(`removed ${join(dataDir, '..', clones[0])}`)
    expect(prune.stdout).toMatch(/the service was stopped by backup \S+, which did not finish/)
    expect((await beside(dataDir)).filter((n) => n.includes('.clone-'))).toEqual([])
  })

  it('a restore killed after both renames: every later run says where the previous data is; nothing removes it', async () => {
    const dataDir = join(tmp.path, 'mid-swap', 'mo-data')
    await mkdir(dataDir, {recursive: true})
    await writeFile(join(dataDir, 'precious'), 'the only copy')
    const restore = background(restoreArgs(id, repo, dataDir, '--force', ...serviceArgs('true', 'sleep 30'), ...NO_SQL))
    await restore.reached('Start service and wait for SQL')
    await restore.kill9()
    const previous = `${dataDir}.before-${id}`

    const cleanup = await runInProcess(['br', 'cleanup', '--data-dir', dataDir])
    expect(cleanup.code, cleanup.stderr).toBe(0)
    expect(cleanup.stdout).toContain(
      `restore ${id} died after swapping in the restored data, before it was checked: ${dataDir} holds the restored data, the previous data is kept in ${previous} (the only copy of it)`,
    )
    expect(cleanup.stdout).toContain(`mv ${dataDir} ${dataDir}.failed-${id} && mv ${previous} ${dataDir}`)
    expect(cleanup.stdout).toContain(`the service was stopped by restore ${id}, which did not finish`)
    expect(cleanup.stdout).not.toMatch(/delete/i)
    expect(await readdir(previous)).toEqual(['precious'])

    // Later runs still say where it is, and a restore of the same backup refuses to overwrite it.
    const backup = await runInProcess(backupArgs(join(tmp.path, 'repo-mid'), dataDir, '--no-encrypt'))
    expect(backup.code, backup.stderr).toBe(0)
    says(backup.stderr, `the data as it was before a restore is kept in ${previous}`)
    const again = await runInProcess(restoreArgs(id, repo, dataDir, '--force'))
    expect(again.code).toBe(2)
    expect(again.stderr).toContain(`${previous} already exists`)
    expect(again.stderr).toContain('it may be the only copy of the data it holds')
    expect(again.stderr).not.toMatch(/delete/i)
    expect(await readdir(previous)).toEqual(['precious'])
  })

  it('a restore dead between its two renames is undone by the next run: the previous data is back in place', async () => {
    const parent = join(tmp.path, 'between')
    const dataDir = join(parent, 'mo-data')
    const previous = `${dataDir}.before-${id}`
    const staging = join(parent, `.mo-data.restore-${id}-0badc0de`)
    await mkdir(previous, {recursive: true})
    await writeFile(join(previous, 'precious'), 'the only copy')
    await mkdir(staging)
    await writeFile(join(staging, 'restored'), 'staged')
    // What restore leaves when killed between `mv mo-data mo-data.before-<id>` and `mv staging mo-data`:
    // its lock, as it writes it, naming a process that is gone.
    const gone = spawnSync('true').pid
    await writeFile(
      join(parent, '.mo-data.moctl-br.lock'),
      JSON.stringify({
        backupId: id,
        command: 'br restore',
        dataDir,
        host: hostname(),
        pid: gone,
        scratch: [staging, `${staging}.mo-data`],
        service: {describe: 'command: true / true', start: 'mo_ctl start'},
        startedAt: new Date().toISOString(),
        swap: {phase: 'swapping', previous, staging},
        token: '0011223344556677',
      }),
    )

    const next = await runInProcess(backupArgs(join(tmp.path, 'repo-between'), dataDir, '--no-encrypt'))
    expect(next.code, next.stderr).toBe(0)
    const {stderr} = next
    says(
      stderr,
      `restore ${id} died between the two renames of its swap: put the previous data back from ${previous} into ${dataDir}`,
    )
    says(stderr, `the service was stopped by restore ${id}, which did not finish`)
    says(stderr, 'start it with: mo_ctl start')
    expect(await readdir(dataDir)).toEqual(['precious'])
    expect(await readdir(parent)).toEqual(['mo-data'])
    await rename(dataDir, `${dataDir}-checked`)
  })
})
