/**
 * The plugin inside another oclif CLI: a host CLI with its own dependencies from the npm registry
 * (test/helpers/host.ts: its own `@oclif/core` and `@oclif/plugin-plugins`) links this repository
 * with `plugins link --no-install` (without it, link runs `npm install` in the repository, which
 * `npm ci` has done already), then runs a real `br list` and `br check`, in a user's
 * environment: production mode (no NODE_ENV). oclif's notice that a linked ESM plugin runs its
 * compiled dist/ is silenced here (OCLIF_DISABLE_LINKED_ESM_WARNING, as the README tells a
 * developer who links): host-link.test.ts shows it, and that help and hints name the host's
 * command (the Node 24 leg runs that small file, not this one). An error prints what standalone
 * `moctl` prints. Also: standalone `moctl plugins` and `moctl help` work, and the host's own
 * `plugins` command is the host's (our copy must not shadow it). And a second plugin of the host
 * (test/fixtures/hook-recorder) listens to br:service:stop / br:service:start around a real
 * backup and restore of a throwaway MariaDB, while our own hooks still stop and start it.
 */
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {stripVTControlCharacters} from 'node:util'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {backupArgs, mariadbService, NO_SQL, restoreArgs} from '../helpers/args.js'
import {ROOT, runCli, runInProcess, tempDir} from '../helpers/cli.js'
import {makeSmallDataDir} from '../helpers/fixtures.js'
import {HOST_BIN, installedHost, userEnv, withoutStepLines} from '../helpers/host.js'
import {mariadbAvailable, skipReason, startMariadb, type TestServer} from '../helpers/mariadb.js'

let tmp: {cleanup: () => Promise<void>; path: string}
let hostBin: string
let hostEnv: NodeJS.ProcessEnv
let repo: string
let backupId: string

beforeAll(async () => {
  tmp = await tempDir('moctl-br-host-')
  hostBin = await installedHost()
  hostEnv = {...userEnv(join(tmp.path, 'host-user')), OCLIF_DISABLE_LINKED_ESM_WARNING: '1'}
  const link = await runCli(['plugins', 'link', ROOT, '--no-install'], {bin: hostBin, env: hostEnv})
  expect(link.code, link.stderr).toBe(0)

  const data = join(tmp.path, 'mo-data')
  await makeSmallDataDir(data)
  repo = join(tmp.path, 'repo')
  const backup = await runCli(backupArgs(repo, data, '--no-encrypt', ...NO_SQL), {
    bin: hostBin,
    env: hostEnv,
  })
  expect(backup.code, backup.stderr).toBe(0)
  backupId = backup.stdout.trim()
}, 600_000)

afterAll(async () => {
  await tmp?.cleanup()
})

describe('installed into a host CLI', () => {
  it('prints an error exactly as standalone moctl does: no EEXIT lines, no warning, the exit code', async () => {
    const args = ['br', 'verify', 'nope', '--path', join(tmp.path, 'nowhere')]
    // standalone's output, from the commands in process (runInProcess prints what bin/run.js does)
    const reference = await runInProcess(args, {env: userEnv(join(tmp.path, 'standalone-user'))})
    expect(reference.code).toBe(2)
    const result = await runCli(args, {bin: hostBin, env: hostEnv})
    expect(result.code).toBe(2)
    expect(withoutStepLines(result.stderr)).toBe(
      withoutStepLines(reference.stderr).replaceAll('moctl br ', `${HOST_BIN} br `),
    )
    expect(result.stderr.trimEnd().split('\n').slice(-2)).toEqual([
      `Error: repository ${join(tmp.path, 'nowhere')} does not exist`,
      `Hint: check --path; \`${HOST_BIN} br backup --path DIR\` creates a repository`,
    ])
  })

  it('runs a real br list against a repository', async () => {
    const list = await runCli(['br', 'list', '--path', repo, '--json'], {bin: hostBin, env: hostEnv})
    expect(list.code, list.stderr).toBe(0)
    expect(JSON.parse(list.stdout).map((r: {id: string}) => r.id)).toEqual([backupId])
  })

  it("runs mo_br's `br check` (verify's alias) on latest", async () => {
    const check = await runCli(['br', 'check', 'latest', '--path', repo, '--quick', '--json'], {
      bin: hostBin,
      env: hostEnv,
    })
    expect(check.code, check.stderr).toBe(0)
    expect(JSON.parse(check.stdout)).toMatchObject({id: backupId, ok: true})
  })

  it("keeps the host's own plugins command, which lists this plugin", async () => {
    const plugins = await runCli(['plugins'], {bin: hostBin, env: hostEnv})
    expect(plugins.code, plugins.stderr).toBe(0)
    expect(plugins.stdout).toContain('@moctl/plugin-br')
    const inspect = await runCli(['plugins', 'inspect', '@moctl/plugin-br', '--json'], {bin: hostBin, env: hostEnv})
    expect(inspect.code, inspect.stderr).toBe(0)
    // Our plugin brings no child plugins: nothing of ours shadows the host's plugin-plugins.
    expect(JSON.parse(inspect.stdout)[0].children ?? []).toEqual([])
  })
})

const standaloneEnv = () => userEnv(join(tmp.path, 'standalone-user'))

describe('standalone moctl', () => {
  // plugin-plugins is an optional peer dependency, not installed in this checkout: what
  // `moctl plugins` says without it, and does with it beside moctl, is host-install.test.ts's.
  it('has help', async () => {
    const help = await runCli(['help', 'br'], {env: standaloneEnv()})
    expect(help.code, help.stderr).toBe(0)
    for (const cmd of ['br backup', 'br list', 'br restore', 'br verify', 'br key']) expect(help.stdout).toContain(cmd)
  })
})

/** One line of the hook-recorder fixture's log (test/fixtures/hook-recorder/hooks/record.js). */
interface Recorded {
  at: number
  bin: string
  dataDir: string
  event: string
  kind: string
  pid: number
  reason: string
}

const RECORDER = join(ROOT, 'test', 'fixtures', 'hook-recorder')

describe('another plugin of the host listening to br:service:stop and br:service:start', () => {
  if (!mariadbAvailable()) {
    it('needs mariadbd', ({skip}) => {
      skip(skipReason())
    })
    return
  }

  let server: TestServer
  let recorderLog: string
  let markers: string
  let env: NodeJS.ProcessEnv

  // Our hooks run the helper's real stop and start scripts; each also notes when it ran, so the
  // recorder's timestamps can be placed against the real stop and start.
  const serviceArgs = () =>
    mariadbService(server, {
      start: `echo "start $(date +%s%3N)" >>'${markers}' && ${server.startCommand}`,
      stop: `${server.stopCommand} && echo "stop $(date +%s%3N)" >>'${markers}'`,
    })
  const recorded = async (): Promise<Recorded[]> =>
    (await readFile(recorderLog, 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Recorded)
  const marked = async () =>
    (await readFile(markers, 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [what, at] = line.split(' ')
        return {at: Number(at), what}
      })
  const databases = async () => (await server.query('show databases')).map((r) => Object.values(r)[0] as string)

  beforeAll(async () => {
    server = await startMariadb()
    recorderLog = join(tmp.path, 'hook-recorder.jsonl')
    markers = join(tmp.path, 'service-markers.txt')
    env = {...hostEnv, HOOK_RECORDER_LOG: recorderLog}
    // A plain-JS plugin that imports nothing: linked as it is, no install, no node_modules.
    const link = await runCli(['plugins', 'link', RECORDER, '--no-install'], {bin: hostBin, env})
    expect(link.code, link.stderr).toBe(0)
  })

  afterAll(async () => {
    await server?.cleanup()
  })

  it('lists both plugins in the host', async () => {
    const plugins = await runCli(['plugins'], {bin: hostBin, env})
    expect(plugins.code, plugins.stderr).toBe(0)
    // CI=true makes oclif colour its output even into a pipe.
    const listed = stripVTControlCharacters(plugins.stdout)
    expect(listed).toMatch(/^@moctl\/plugin-br 0\.1\.0 \(link\)/m)
    expect(listed).toMatch(/^hook-recorder 1\.0\.0 \(link\) .*hook-recorder$/m)
  })

  it('sees stop then start around a real backup and a real restore, while our hooks restart the server', async () => {
    await server.query('create database hooked')
    await server.query('create table hooked.t (id int primary key)')
    await server.query('insert into hooked.t values (7)')
    const pidBefore = await server.pid()
    expect(pidBefore).toBeGreaterThan(0)

    const repo = join(tmp.path, 'repo-hooks')
    const backup = await runCli(backupArgs(repo, server.dataDir, '--no-encrypt', '--json', ...serviceArgs()), {
      bin: hostBin,
      env,
    })
    expect(backup.code, backup.stderr).toBe(0)
    const record = JSON.parse(backup.stdout)
    expect(record.serviceDownMs).toBeGreaterThan(0)
    // Our stop hook really stopped mariadbd and our start hook launched a new one.
    const pidAfterBackup = await server.pid()
    expect(pidAfterBackup).toBeGreaterThan(0)
    expect(pidAfterBackup).not.toBe(pidBefore)
    expect(await databases()).toContain('hooked')

    const afterBackup = await recorded()
    expect(afterBackup.map((r) => [r.event, r.reason])).toEqual([
      ['br:service:stop', 'br backup'],
      ['br:service:start', 'br backup'],
    ])

    await server.query('drop database hooked')
    await server.query('create database not_in_backup')
    const restore = await runCli(
      restoreArgs(record.id, repo, server.dataDir, '--force', '--discard-old', '--json', ...serviceArgs()),
      {bin: hostBin, env},
    )
    expect(restore.code, restore.stderr).toBe(0)
    const pidAfterRestore = await server.pid()
    expect(pidAfterRestore).toBeGreaterThan(0)
    expect(pidAfterRestore).not.toBe(pidAfterBackup)
    // The restarted server runs on the restored data.
    const dbs = await databases()
    expect(dbs).toContain('hooked')
    expect(dbs).not.toContain('not_in_backup')
    expect(await server.query('select id from hooked.t')).toEqual([{id: 7}])

    const events = await recorded()
    expect(events.map((r) => [r.event, r.reason])).toEqual([
      ['br:service:stop', 'br backup'],
      ['br:service:start', 'br backup'],
      ['br:service:stop', 'br restore'],
      ['br:service:start', 'br restore'],
    ])
    for (const event of events) {
      expect(event).toMatchObject({bin: 'opsctl', dataDir: server.dataDir, kind: 'command'})
    }

    // Each command fires both events from its own process; backup and restore are two processes.
    expect(events[0].pid).toBe(events[1].pid)
    expect(events[2].pid).toBe(events[3].pid)
    expect(events[2].pid).not.toBe(events[0].pid)

    // The real stops and starts, in order, and each start event came only once the stop had
    // finished: oclif awaits every plugin's stop hook before our command fires the start.
    const real = await marked()
    expect(real.map((m) => m.what)).toEqual(['stop', 'start', 'stop', 'start'])
    expect(real[0].at).toBeLessThanOrEqual(events[1].at)
    expect(real[2].at).toBeLessThanOrEqual(events[3].at)
  })

  it("a listener that fails does not decide the service's state: ours stops and starts it, theirs is a warning", async () => {
    await server.query('create database listener_fails')
    const repo = join(tmp.path, 'repo-failing-listener')
    const pidBefore = await server.pid()
    // A plain Error on stop: our hook still stops the server, and the backup starts it again.
    const backup = await runCli(backupArgs(repo, server.dataDir, '--no-encrypt', '--json', ...serviceArgs()), {
      bin: hostBin,
      env: {...env, HOOK_RECORDER_FAIL: 'br:service:stop'},
    })
    expect(backup.code, backup.stderr).toBe(0)
    expect(backup.stderr).toContain(
      'br:service:stop listener of hook-recorder failed (ignored): hook-recorder refuses br:service:stop',
    )
    const pidAfterBackup = await server.pid()
    expect(pidAfterBackup).toBeGreaterThan(0)
    expect(pidAfterBackup).not.toBe(pidBefore)
    expect(await databases()).toContain('listener_fails')

    // An oclif error (with an exit code) on start: the restore goes on and the server runs on the restored data.
    await server.query('drop database listener_fails')
    const restore = await runCli(
      restoreArgs(
        JSON.parse(backup.stdout).id,
        repo,
        server.dataDir,
        '--force',
        '--discard-old',
        '--json',
        ...serviceArgs(),
      ),
      {bin: hostBin, env: {...env, HOOK_RECORDER_ERROR: 'br:service:start'}},
    )
    expect(restore.code, restore.stderr).toBe(0)
    expect(restore.stderr).toContain(
      'br:service:start listener of hook-recorder failed (ignored): hook-recorder errors on br:service:start',
    )
    expect(JSON.parse(restore.stdout).databases).toContain('listener_fails')
    expect(await databases()).toContain('listener_fails')
  })
})
