/**
 * The mo_ctl controller against a real server: test/fixtures/mo_ctl is a mo_ctl-compatible script
 * (mo_ctl_standalone's status/stop/start words, exit codes, process search and stop retries) that
 * drives a throwaway MariaDB (test/helpers/mariadb.ts) instead of mo-service. The controller runs it
 * as it would run the real mo_ctl, through --mo-ctl PATH.
 */
import {execFile} from 'node:child_process'
import {join} from 'node:path'
import {promisify} from 'node:util'
import {afterAll, beforeAll, beforeEach, describe, expect, it, vi} from 'vitest'

import {createController} from '../../src/lib/service/controller.js'
import {isAnsweringSql, listDatabases, waitForSql} from '../../src/lib/service/sql.js'
import {type ServiceSettings} from '../../src/lib/service/types.js'
import {ROOT} from '../helpers/cli.js'
import {mariadbAvailable, skipReason, startMariadb, type TestServer} from '../helpers/mariadb.js'

const MO_CTL = join(ROOT, 'test', 'fixtures', 'mo_ctl')
const available = mariadbAvailable()

/** `mo_ctl status` run by hand: its exit code and output */
async function status(): Promise<{code: number; stdout: string}> {
  try {
    return {code: 0, stdout: (await promisify(execFile)(MO_CTL, ['status'])).stdout}
  } catch (error) {
    return {code: (error as {code: number}).code, stdout: (error as {stdout: string}).stdout}
  }
}

describe('mo_ctl controller with a real MariaDB', () => {
  if (!available) {
    it('needs mariadbd', ({skip}) => {
      skip(skipReason())
    })
    return
  }

  let server: TestServer
  let settings: ServiceSettings
  beforeAll(async () => {
    server = await startMariadb()
    settings = {kind: 'mo_ctl', moCtl: MO_CTL, sql: server.sql}
  })

  // The controller runs mo_ctl with this process's environment, as the CLI would. Stubbed per
  // test: vitest (unstubEnvs) puts the environment back before the next one.
  beforeEach(() => {
    vi.stubEnv('MO_CTL_FIXTURE_PIDFILE', server.pidFile)
    vi.stubEnv('MO_CTL_FIXTURE_START', server.startCommand)
    // Up to 10 tries a second apart (the fixture's default): a shutdown on a busy machine can
    // outlast 10 tries 0.1 s apart.
    vi.stubEnv('STOP_INTERVAL', '1')
  })

  afterAll(async () => {
    await server?.cleanup()
  })

  it('stops the server with mo_ctl stop (confirmed by mo_ctl status) and starts it with mo_ctl start', async () => {
    await server.query('create database mo_ctl_check')
    const pid = await server.pid()
    const before = await status()
    expect(before.code).toBe(0)
    expect(before.stdout).toMatch(/\[INFO] {4}At least one mo-service is running\. Process info: /)
    expect(before.stdout).toContain(`${pid}`)

    const controller = createController(settings)
    await controller.stop()
    expect(await isAnsweringSql(server.sql)).toBe(false)
    expect(await server.pid()).toBeNull()
    const after = await status()
    expect(after).toMatchObject({code: 1, stdout: expect.stringMatching(/\[INFO] {4}No mo-service is running\n$/)})
    // A second stop finds nothing to stop, as mo_ctl says: "No need to stop mo-service".
    await controller.stop()

    await controller.start()
    await waitForSql(server.sql)
    expect(await listDatabases(server.sql)).toContain('mo_ctl_check')
    expect(await server.pid()).not.toBe(pid)
    expect((await status()).code).toBe(0)
  })

  it('fails with exit 5 when mo_ctl gives up stopping a service that will not stop; the server keeps running', async () => {
    vi.stubEnv('MO_CTL_FIXTURE_IGNORE_TERM', '1')
    vi.stubEnv('STOP_INTERVAL', '0.02')
    await expect(createController(settings).stop()).rejects.toMatchObject({
      code: 'service',
      exitCode: 5,
      message: expect.stringMatching(
        /^stop command failed \(exit 1\): .*\[ERROR] {4}Stop failed after a maximum of 10 times$/,
      ),
    })

    expect(await isAnsweringSql(server.sql)).toBe(true)
  })
})
