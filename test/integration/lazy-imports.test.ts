/**
 * Modules that a cold backup and its verify do not need are not imported by them: listr2 loads
 * only to draw the task tree on a terminal (under --json, or with stderr not a terminal: cron, a
 * pipe, a script's capture, never), and smol-toml only when a MatrixOne config is read (a restore
 * into a target, an online backup). Each would be start-up cost in every such run. Proven with a
 * module resolve hook (node:module register) in the CLI process that logs every listr2 or
 * smol-toml specifier resolved; the same hook sees each load where it is needed, so an empty log
 * means something.
 */
import {execFile} from 'node:child_process'
import {mkdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'
import {promisify} from 'node:util'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {backupArgs, NO_SQL, readWith, suiteKey} from '../helpers/args.js'
import {ROOT, runCli, tempDir, type TempDir} from '../helpers/cli.js'
import {makeSmallDataDir} from '../helpers/fixtures.js'
import {resolveLogger, type ResolveLogger} from '../helpers/resolve-log.js'

let tmp: TempDir
let importLog: ResolveLogger

beforeAll(async () => {
  tmp = await tempDir()
  importLog = await resolveLogger(tmp.path, ['listr2', 'smol-toml'], 'IMPORT_LOG')
})
afterAll(async () => tmp?.cleanup())

/** A module of dist/ run in a process of its own, with the resolve hook logging to `log`. */
async function runScript(log: string, module: string, body: string): Promise<void> {
  const url = pathToFileURL(join(ROOT, 'dist', module)).href
  await promisify(execFile)(
    process.execPath,
    ['--input-type=module', '-e', `const m = await import('${url}')\n${body}`],
    {
      env: {...process.env, ...importLog.env(log)},
    },
  )
}

describe('modules a run does not need load lazily', () => {
  it('backup and verify, under --json and as plain lines, resolve neither listr2 nor smol-toml; a tree and a MatrixOne config do', async () => {
    const dataDir = join(tmp.path, 'mo-data')
    const repo = join(tmp.path, 'repo')
    await makeSmallDataDir(dataDir)
    const key = await suiteKey(tmp.path)
    const env = {...importLog.env('runs.log'), XDG_CACHE_HOME: join(tmp.path, 'cache')}
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
    expect(await importLog.read('runs.log')).toBe('')

    // The controls: a flow shown as a task tree loads listr2; reading a launch config, smol-toml.
    await runScript(
      'tree.log',
      'lib/ui/tasks.js',
      `await m.runFlowWithTasks({steps: [{run: async () => {}, title: 'one step'}]}, {}, {mode: 'tty', signal: new AbortController().signal})`,
    )
    const tree = await importLog.read('tree.log')
    expect(tree).toContain('listr2')
    expect(tree).not.toContain('smol-toml')
    const launch = join(tmp.path, 'etc', 'launch')
    await mkdir(launch, {recursive: true})
    await writeFile(join(launch, 'launch.toml'), 'tnservices = ["./etc/launch/tn.toml"]\n')
    await runScript(
      'config.log',
      'lib/mo/config.js',
      `await m.readTargetConfig({dataDir: ${JSON.stringify(dataDir)}}).then(() => process.exit(1), () => {})`,
    )
    expect(await importLog.read('config.log')).toContain('smol-toml')
  }, 60_000)
})
