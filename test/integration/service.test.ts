/**
 * The service layer against a real server: a throwaway MariaDB (test/helpers/mariadb.ts) stands
 * in for MatrixOne. The command controller stops it with the helper's stop command (the port
 * goes silent, the pid is gone) and starts it again (SQL answers, the data is still there); the
 * plugin's hooks do the same through createController; a stop command that returns while the
 * server still runs is caught.
 */
import {Config} from '@oclif/core'
import {readFileSync} from 'node:fs'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import startHook from '../../src/hooks/service-start.js'
import stopHook from '../../src/hooks/service-stop.js'
import {createController} from '../../src/lib/service/controller.js'
import {isAnsweringSql, listDatabases, waitForSql} from '../../src/lib/service/sql.js'
import {type ServiceSettings} from '../../src/lib/service/types.js'
import {ROOT} from '../helpers/cli.js'
import {mariadbAvailable, skipReason, startMariadb, type TestServer} from '../helpers/mariadb.js'

const available = mariadbAvailable()

describe('service control of a real MariaDB', () => {
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
    settings = {kind: 'command', sql: server.sql, startCommand: server.startCommand, stopCommand: server.stopCommand}
  })

  afterAll(async () => {
    await server?.cleanup()
  })

  it('stops the server with the stop command and starts it again with the start command', async () => {
    await server.query('create database service_check')
    const pid = await server.pid()
    expect(pid).toBeGreaterThan(0)
    const controller = createController(settings)

    await controller.stop()
    expect(await isAnsweringSql(server.sql)).toBe(false)
    expect(processGone(pid!)).toBe(true)
    expect(await server.pid()).toBeNull()

    const started = Date.now()
    await controller.start()
    // The start command returns at once, like `mo_ctl start`: readiness is waitForSql's job.
    expect(Date.now() - started).toBeLessThan(5000)
    const ready = await waitForSql(server.sql)
    expect(ready.version).toMatch(/MariaDB/)
    expect(await listDatabases(server.sql)).toContain('service_check')
    expect(await server.pid()).not.toBe(pid)
  })

  it('does the same through the br:service:stop and br:service:start hooks', async () => {
    const config = await Config.load(ROOT)
    const options = {config, dataDir: server.dataDir, reason: 'br test', service: settings}
    const debug: string[] = []
    const context = {
      config,
      debug: (...args: unknown[]) => debug.push(args.join(' ')),
      error(message: Error | string): never {
        throw message instanceof Error ? message : new Error(message)
      },
      exit(code?: number): never {
        throw new Error(`exit ${code}`)
      },
      log: () => expect.fail('hooks must not write to stdout'),
      warn: () => expect.fail('hooks must not warn'),
    }

    await stopHook.call(context, {...options, context})
    expect(await isAnsweringSql(server.sql)).toBe(false)
    await startHook.call(context, {...options, context})
    await waitForSql(server.sql)
    expect(debug.join('\n')).toContain('stopping the service for br test')
  })

  it('fails a stop whose command returns while the server still answers SQL (exit 5)', async () => {
    const controller = createController({...settings, stopCommand: 'true'}, {stopSettleMs: 500})
    await expect(controller.stop()).rejects.toMatchObject({
      code: 'service',
      exitCode: 5,
      message: `stop command returned but the service still answers SQL on 127.0.0.1:${server.port} after 500ms`,
    })
    expect(await isAnsweringSql(server.sql)).toBe(true)
  })
})

/** gone, or a zombie waiting for its reaper (it has exited) */
function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return true
  }

  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z'
  } catch {
    return true
  }
}
