/**
 * listr2 loads only for the task tree on a terminal: a backup and a verify under --json, or with
 * stderr not a terminal (plain lines: cron, a pipe, a script's capture), never import it; every
 * such run would pay its start-up cost. Proven with a module resolve hook (node:module register)
 * in the CLI process that logs every listr2 specifier resolved; the same hook sees listr2 load
 * when a flow runs as a tree, so an empty log means something.
 */
import {execFile} from 'node:child_process'
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'
import {promisify} from 'node:util'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {backupArgs, NO_SQL, readWith, suiteKey} from '../helpers/args.js'
import {ROOT, runCli, tempDir, type TempDir} from '../helpers/cli.js'
import {makeSmallDataDir} from '../helpers/fixtures.js'
import {resolveLogger, type ResolveLogger} from '../helpers/resolve-log.js'

let tmp: TempDir
let listrLog: ResolveLogger

beforeAll(async () => {
  tmp = await tempDir()
  listrLog = await resolveLogger(tmp.path, 'listr2', 'LISTR_LOG')
})
afterAll(async () => tmp?.cleanup())

describe('listr2 loads lazily', () => {
  it('backup and verify, under --json and as plain lines, never resolve listr2; a flow shown as a tree does', async () => {
    const dataDir = join(tmp.path, 'mo-data')
    const repo = join(tmp.path, 'repo')
    await makeSmallDataDir(dataDir)
    const key = await suiteKey(tmp.path)
    const env = {...listrLog.env('runs.log'), XDG_CACHE_HOME: join(tmp.path, 'cache')}
    const json = await runCli(backupArgs(repo, dataDir, '--recipient', key.recipient, ...NO_SQL, '--json'), {env})
    expect(json.code, json.stderr).toBe(0)
    expect(JSON.parse(json.stdout).type).toBe('full')
    // stderr is a pipe here: the plain renderer's lines, one start and one end per step.
    const plain = await runCli(backupArgs(repo, dataDir, '--recipient', key.recipient, ...NO_SQL), {env})
    expect(plain.code, plain.stderr).toBe(0)
    expect(plain.stderr).toMatch(/Pack, compress and encrypt: done in/)
    const verify = await runCli(['br', 'verify', 'latest', '--path', repo, ...readWith(key)], {env})
    expect(verify.code, verify.stderr).toBe(0)
    expect(verify.stderr).toMatch(/: done in/)
    expect(await listrLog.read('runs.log')).toBe('')

    // The control: the same hook in a process that runs a flow as a task tree sees listr2.
    const tasks = pathToFileURL(join(ROOT, 'dist/lib/ui/tasks.js')).href
    const script = `const {runFlowWithTasks} = await import(${JSON.stringify(tasks)})
await runFlowWithTasks({steps: [{run: async () => {}, title: 'one step'}]}, {}, {mode: 'tty', signal: new AbortController().signal})`
    await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
      env: {...process.env, ...listrLog.env('tree.log')},
    })
    expect(await listrLog.read('tree.log')).toContain('listr2')
  }, 60_000)
})
