import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BrError} from '../../../../src/lib/errors.js'
import {createController} from '../../../../src/lib/service/controller.js'
import {type ServiceSettings} from '../../../../src/lib/service/types.js'
import {tempDir, type TempDir} from '../../../helpers/cli.js'
import {freePort} from '../../../helpers/net.js'

describe('createController', () => {
  let tmp: TempDir
  let dir: string
  let closedPort: number

  beforeAll(async () => {
    tmp = await tempDir('moctl-br-controller-')
    dir = tmp.path
    closedPort = await freePort()
  })
  afterAll(() => tmp?.cleanup())

  // SQL on a port where nothing listens: a stop is confirmed at once.
  const settings = (stopCommand: string, startCommand = 'true'): ServiceSettings => ({
    kind: 'command',
    sql: {deadlineMs: 1000, host: '127.0.0.1', port: closedPort, user: 'root'},
    startCommand,
    stopCommand,
  })

  describe('command', () => {
    it('runs the stop and start commands through /bin/sh', async () => {
      const log = join(dir, 'calls.log')
      const controller = createController(settings(`echo "stop $((1 + 1))" >> '${log}'`, `echo start >> '${log}'`))
      await controller.stop()
      await controller.start()
      expect(await readFile(log, 'utf8')).toBe('stop 2\nstart\n')
      expect(controller.describe()).toBe(`command: echo "stop $((1 + 1))" >> '${log}' / echo start >> '${log}'`)
    })

    it('names the exit code and the last stderr line when a command fails (exit 5)', async () => {
      const controller = createController(
        settings('echo progress; echo "first" >&2; echo "mo-service: no such process" >&2; exit 3'),
      )
      const error = await controller.stop().catch((error_: unknown) => error_)
      expect(error).toBeInstanceOf(BrError)
      expect(error).toMatchObject({
        code: 'service',
        exitCode: 5,
        message: 'stop command failed (exit 3): mo-service: no such process',
        oclif: {exit: 5},
      })
      expect((error as BrError).suggestions[0]).toContain('exit 3')
    })

    it('names a command with its password hidden: in describe(), the error and its hints', async () => {
      const stop = `echo "mysqladmin -uroot -pHunter2x shutdown: access denied" >&2; exit 1 # -pHunter2x`
      const controller = createController(settings(stop, 'MYSQL_PWD=Hunter2x ./start.sh'))
      expect(controller.describe()).toBe(
        'command: echo "mysqladmin -uroot -p*** shutdown: access denied" >&2; exit 1 # -p*** / MYSQL_PWD=*** ./start.sh',
      )
      const error = (await controller.stop().then(
        () => expect.fail('the stop must fail'),
        (error_: unknown) => error_,
      )) as BrError
      expect(error.exitCode).toBe(5)
      expect(error.message).toBe('stop command failed (exit 1): mysqladmin -uroot -p*** shutdown: access denied')
      expect(JSON.stringify(error.suggestions)).toContain('-p***')
      expect(JSON.stringify([error.message, error.suggestions])).not.toContain('Hunter2x')
    })

    it('falls back to the last stdout line when stderr is empty', async () => {
      await expect(createController(settings('true', 'echo "port 6001 busy"; exit 1')).start()).rejects.toThrow(
        'start command failed (exit 1): port 6001 busy',
      )
    })

    it('kills a command that runs past its timeout, with whatever it waits for', async () => {
      const childPid = join(dir, 'timeout.pid')
      const controller = createController(settings(`sleep 30 & echo $! > '${childPid}'; wait`), {commandTimeoutMs: 300})
      const started = Date.now()
      await expect(controller.stop()).rejects.toMatchObject({
        code: 'service',
        message: 'stop command timed out after 300ms',
      })
      expect(Date.now() - started).toBeLessThan(5000)
      expect(await gone(Number(await readFile(childPid, 'utf8')))).toBe(true)
    })

    it('ends the command on abort and rejects as interrupted (exit 130)', async () => {
      const controller = createController(settings('true', 'sleep 30'))
      const abort = new AbortController()
      setTimeout(() => abort.abort(new Error('SIGINT')), 200)
      const started = Date.now()
      await expect(controller.start(abort.signal)).rejects.toMatchObject({code: 'interrupted', exitCode: 130})
      expect(Date.now() - started).toBeLessThan(5000)
    })

    it('does not run the command at all when already aborted', async () => {
      const marker = join(dir, 'never')
      await expect(createController(settings(`touch '${marker}'`)).stop(AbortSignal.abort())).rejects.toMatchObject({
        code: 'interrupted',
      })
      await expect(readFile(marker)).rejects.toThrow()
    })

    it('refuses --service command without both commands (usage, exit 2)', () => {
      expect(() => createController({...settings('true'), startCommand: undefined})).toThrow(
        expect.objectContaining({code: 'usage', exitCode: 2}),
      )
    })
  })

  describe('none', () => {
    it('runs nothing, even with commands in its settings, and returns at once', async () => {
      // A stray --stop-cmd beside --service none must not run: the marker would appear.
      const marker = join(dir, 'none-marker')
      const controller = createController({...settings(`touch '${marker}'`, `touch '${marker}'`), kind: 'none'})
      const started = Date.now()
      await controller.stop()
      await controller.start()
      expect(Date.now() - started).toBeLessThan(500)
      await expect(readFile(marker)).rejects.toMatchObject({code: 'ENOENT'})
      expect(controller.describe()).toBe('none: the service is not managed')
    })
  })
})

/** Whether the process has exited within a second (a zombie awaiting its reaper counts as exited). */
async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 20; i++) {
    const state = await readFile(`/proc/${pid}/stat`, 'utf8').then(
      (stat) => stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3),
      () => 'gone',
    )
    if (state === 'gone' || state === 'Z') return true
    await new Promise((resolve) => {
      setTimeout(resolve, 50)
    })
  }

  return false
}
