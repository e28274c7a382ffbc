/**
 * One writer per repository, as processes: two concurrent backups (the second fails at once with
 * exit 4 naming the first, or waits with --wait-lock), and backups killed mid-way (during the
 * service stop; while packing a 64 MiB data dir made by scripts/make-mo-data.mjs) whose stale lock
 * the next backup takes over with a warning. The contenders and the killed runs are processes;
 * the runs after a kill, and the lists, run in process (runInProcess).
 */
import {spawn} from 'node:child_process'
import {readdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {createMoData} from '../../scripts/make-mo-data.mjs'
import {backupArgs, NO_SQL} from '../helpers/args.js'
import {RUN, runCli, runInProcess, tempDir} from '../helpers/cli.js'
import {makeSmallDataDir} from '../helpers/fixtures.js'

let tmp: {cleanup: () => Promise<void>; path: string}
let dataDir: string

beforeAll(async () => {
  tmp = await tempDir('moctl-br-lock-')
  dataDir = join(tmp.path, 'mo-data')
  await makeSmallDataDir(dataDir)
})
afterAll(async () => tmp?.cleanup())

/**
 * A backup that holds the lock while its stop command runs, until `release` is called (or for
 * `stopSeconds`, whichever is first); `locked` resolves once it has the lock. A stop that waits
 * for the test, not a clock: on a loaded machine a second process may take seconds to start.
 */
function slowBackup(repo: string, stopSeconds: number) {
  const released = `${repo}.released`
  const backup = backgroundBackup(
    [
      '--path',
      repo,
      '--data-dir',
      dataDir,
      '--port',
      '1',
      '--service',
      'command',
      '--stop-cmd',
      `i=0; while [ ! -e '${released}' ] && [ $i -lt ${stopSeconds * 10} ]; do sleep 0.1; i=$((i+1)); done`,
      '--start-cmd',
      'true',
      '--sql-timeout',
      '1',
    ],
    'Stop service',
  )
  return {...backup, release: async () => writeFile(released, '')}
}

/** `br backup ARGS` in its own process group; `locked` resolves once its stderr shows `step` started. */
function backgroundBackup(args: string[], step: string) {
  const child = spawn(process.execPath, [RUN, 'br', 'backup', '--no-encrypt', ...args], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  const locked = new Promise<void>((resolve) => {
    child.stderr.on('data', (d) => {
      stderr += d
      if (stderr.includes(step)) resolve()
    })
  })
  const exited = new Promise<null | number>((resolve) => {
    child.on('close', resolve)
  })
  return {child, exited, locked, stderr: () => stderr}
}

/** oclif wraps a warning at the terminal width, continuing with ' ›   ': one line again. */
const unwrap = (stderr: string) => stderr.replaceAll(/ *\n ›\s+/g, ' ')

describe('repository lock', () => {
  it('a second backup fails at once with exit 4 naming the first; with --wait-lock it waits its turn', async () => {
    const repo = join(tmp.path, 'repo-concurrent')
    const first = slowBackup(repo, 100)
    await first.locked
    const second = await runCli(backupArgs(repo, dataDir, '--no-encrypt', ...NO_SQL))
    expect(second.code).toBe(4)
    expect(second.stderr).toContain(`is locked by br backup (pid ${first.child.pid}`)
    expect(second.stderr).toContain('--wait-lock')
    const waiting = backgroundBackup(
      ['--path', repo, '--data-dir', dataDir, ...NO_SQL, '--wait-lock', '60'],
      'Open repository: started',
    )
    await waiting.locked
    // It is in the lock's step, and does not get past it while the first holds the lock.
    await sleep(1000)
    expect(waiting.stderr()).not.toContain('Open repository: done')
    await first.release()
    // The first backup's restart is not confirmed (nothing answers SQL on port 1): it fails, exit 5, and unlocks.
    expect(await first.exited).toBe(5)
    expect(await waiting.exited, waiting.stderr()).toBe(0)
    expect(waiting.stderr()).toContain('Open repository: done')
    const list = JSON.parse((await runInProcess(['br', 'list', '--path', repo, '--json'])).stdout)
    expect(list).toHaveLength(1)
  })

  it("a killed backup's stale lock is taken over with a warning", async () => {
    const repo = join(tmp.path, 'repo-killed')
    const killed = slowBackup(repo, 30)
    await killed.locked
    process.kill(-killed.child.pid!, 'SIGKILL')
    await killed.exited
    const next = await runInProcess(backupArgs(repo, dataDir, '--no-encrypt', ...NO_SQL))
    expect(next.code, next.stderr).toBe(0)
    expect(unwrap(next.stderr)).toContain(`took over a stale lock of br backup (pid ${killed.child.pid}`)
  })

  it('a backup killed while packing leaves a stale lock and leftovers: the next backup takes over and succeeds', async () => {
    const bigDir = join(tmp.path, 'mo-data-64m')
    createMoData(bigDir, {seed: 7, size: '64MiB'})
    const repo = join(tmp.path, 'repo-killed-packing')
    const killed = backgroundBackup(['--path', repo, '--data-dir', bigDir, '--port', '1'], 'Pack, compress and encrypt')
    await killed.locked
    await new Promise((resolve) => {
      setTimeout(resolve, 100)
    })
    process.kill(-killed.child.pid!, 'SIGKILL')
    expect(await killed.exited, 'the first backup finished before it could be killed').toBeNull()
    expect(await readdir(repo)).toContain('lock.json')
    const leftovers = await readdir(join(repo, 'backups'))
    expect(leftovers).toHaveLength(1)

    const next = await runInProcess(backupArgs(repo, dataDir, '--no-encrypt', ...NO_SQL))
    expect(next.code, next.stderr).toBe(0)
    expect(unwrap(next.stderr)).toMatch(
      new RegExp(
        `took over a stale lock of br backup \\(pid ${killed.child.pid} .*\\): pid ${killed.child.pid} no longer runs`,
      ),
    )
    const list = JSON.parse((await runInProcess(['br', 'list', '--path', repo, '--json'])).stdout)
    expect(list.map((r: {id: string}) => r.id)).toEqual([next.stdout.trim()])
    expect(next.stdout.trim()).not.toBe(leftovers[0])
    expect(await readdir(repo)).not.toContain('lock.json')
  })
})
