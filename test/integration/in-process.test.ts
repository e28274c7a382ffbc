/**
 * runInProcess (test/helpers/cli.ts) stands in for a process run in most integration tests: here
 * the two run the same command lines and must give the same exit code, stdout and stderr (the
 * timestamped step lines aside, whose times differ): a table, --json, a warning, a refusal of
 * ours and one of oclif's parser, help, settings from the environment and from `br config`. And
 * a run leaves the test's process as it found it: environment, exit code, stdout and stderr.
 */
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {backupArgs, NO_SQL, suiteKey, type SuiteKey} from '../helpers/args.js'
import {optionsFor, takeBackup} from '../helpers/backup.js'
import {runCli, runInProcess, tempDir, type TempDir} from '../helpers/cli.js'
import {makeSmallDataDir} from '../helpers/fixtures.js'
import {withoutStepLines} from '../helpers/host.js'

let tmp: TempDir
let dataDir: string
let repo: string
let id: string
let key: SuiteKey

beforeAll(async () => {
  tmp = await tempDir('moctl-br-in-process-')
  dataDir = join(tmp.path, 'mo-data')
  repo = join(tmp.path, 'repo')
  await makeSmallDataDir(dataDir)
  key = await suiteKey(tmp.path)
  id = (await takeBackup(optionsFor(dataDir, repo, {encrypt: {recipients: [key.recipient], type: 'recipients'}}))).id
})

afterAll(async () => {
  await tmp?.cleanup()
})

/** Both runs of `args`: the same code, stdout and stderr. */
async function expectSame(args: string[], env: NodeJS.ProcessEnv = {}, expectedCode = 0) {
  const process_ = await runCli(args, {env})
  const inProcess = await runInProcess(args, {env})
  expect(process_.code, process_.stderr).toBe(expectedCode)
  expect({...inProcess, stderr: withoutStepLines(inProcess.stderr)}).toEqual({
    ...process_,
    stderr: withoutStepLines(process_.stderr),
  })
  return inProcess
}

describe('runInProcess gives what a process run gives', () => {
  it('a table, and the same as --json', async () => {
    expect((await expectSame(['br', 'list', '--path', repo])).stdout).toContain(id)
    expect(JSON.parse((await expectSame(['br', 'list', '--path', repo, '--json'])).stdout)[0].id).toBe(id)
  })

  it('a flow with its step lines and a warning on stderr', async () => {
    const r = await expectSame(['br', 'verify', id, '--path', repo, '--identity', key.identity])
    expect(r.stderr).toMatch(/^Warning: /m)
    expect(r.stderr).toMatch(/^\d{4}-\d\d-\d\dT\S+ /m)
  })

  it('our refusal: Error and Hint lines, exit 2; under --json the error object on stdout', async () => {
    const missing = ['br', 'list', '--path', join(tmp.path, 'nowhere')]
    expect((await expectSame(missing, {}, 2)).stderr).toMatch(/^Error: repository .* does not exist\nHint: /)
    expect(JSON.parse((await expectSame([...missing, '--json'], {}, 2)).stdout).error.exitCode).toBe(2)
  })

  it("oclif's own parse error, and a wrong key (exit 3)", async () => {
    expect((await expectSame(['br', 'list', '--path', repo, '--no-such-flag'], {}, 2)).stderr).toContain(
      'Nonexistent flag: --no-such-flag',
    )
    const other = await suiteKey(tmp.path, 'other.key')
    await expectSame(['br', 'verify', id, '--path', repo, '--identity', other.identity], {}, 3)
  })

  it('help', async () => {
    expect((await expectSame(['br', 'list', '--help'])).stdout).toContain('$ moctl br list')
  })

  it('settings from the environment and from br config, in its own config dir', async () => {
    expect((await expectSame(['br', 'list'], {MOCTL_BR_REPO: repo})).stdout).toContain(id)
    const env = {XDG_CONFIG_HOME: join(tmp.path, 'xdg')}
    await expectSame(['br', 'config', 'set', 'path', repo], env)
    expect((await expectSame(['br', 'config', 'get', 'path'], env)).stdout).toBe(`${repo}\n`)
  })

  it('a backup taken in process is a backup like any other', async () => {
    const r = await runInProcess(backupArgs(join(tmp.path, 'repo-2'), dataDir, '--no-encrypt', ...NO_SQL))
    expect(r.code, r.stderr).toBe(0)
    const listed = await runCli(['br', 'list', '--path', join(tmp.path, 'repo-2'), '--json'])
    expect(JSON.parse(listed.stdout).map((b: {id: string}) => b.id)).toEqual([r.stdout.trim()])
  })
})

describe('a run leaves the process as it found it', () => {
  it('the environment, the exit code, stdout and stderr', async () => {
    const env = {...process.env}
    const writes = [process.stdout.write, process.stderr.write]
    const r = await runInProcess(['br', 'list', '--path', join(tmp.path, 'nowhere'), '--json'], {
      env: {MOCTL_BR_REPO: '/elsewhere'},
    })
    expect(r.code).toBe(2)
    expect(process.env).toEqual(env)
    expect(process.exitCode).toBeUndefined()
    expect([process.stdout.write, process.stderr.write]).toEqual(writes)
  })

  it('refuses a second run while one runs: overlapping runs need processes', async () => {
    const first = runInProcess(['br', 'list', '--path', repo])
    await expect(runInProcess(['br', 'list', '--path', repo])).rejects.toThrow(/one command at a time/)
    expect((await first).code).toBe(0)
  })
})
