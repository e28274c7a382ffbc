/**
 * The mo_ctl controller runs `<mo_ctl> stop`, confirms with `<mo_ctl> status` (exit 0 means a
 * mo-service still runs, as in mo_ctl_standalone's status.sh), and `<mo_ctl> start`. A real script
 * stands in for mo_ctl here: it records its arguments and keeps the service's state in a file;
 * test/integration/mo-ctl.test.ts runs the mo_ctl-compatible fixture against a real server.
 */
import {chmod, mkdir, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it, vi} from 'vitest'

import {createController} from '../../../../src/lib/service/controller.js'
import {type ServiceSettings} from '../../../../src/lib/service/types.js'
import {tempDir, type TempDir} from '../../../helpers/cli.js'
import {freePort} from '../../../helpers/net.js'

let tmp: TempDir
beforeEach(async () => {
  tmp = await tempDir()
})
afterEach(async () => {
  await tmp.cleanup()
})

/** A fake mo_ctl at `path`; `stop` behaves as told. */
async function fakeMoCtl(path: string, stop: 'fails' | 'lies' | 'works'): Promise<void> {
  const state = join(tmp.path, 'state')
  const stopBody = {
    fails: `echo "2026-11-25 05:00:00.000 UTC+0000    [ERROR]    Stop failed after a maximum of 10 times"; exit 1`,
    lies: 'echo "Stop succeeded"',
    works: `echo stopped > '${state}'; echo "Stop succeeded"`,
  }[stop]
  await writeFile(
    path,
    `#!/bin/sh
echo "$*" >> '${tmp.path}/calls'
case "$1" in
  stop) ${stopBody} ;;
  start) echo running > '${state}' ;;
  status) if [ "$(cat '${state}')" = running ]; then echo "At least one mo-service is running"; else echo "No mo-service is running"; exit 1; fi ;;
esac
`,
  )
  await chmod(path, 0o755)
  await writeFile(state, 'running\n')
}

const settings = async (moCtl?: string): Promise<ServiceSettings> => ({
  kind: 'mo_ctl',
  moCtl,
  // nothing listens there: the SQL check after a stop passes at once
  sql: {deadlineMs: 1000, host: '127.0.0.1', port: await freePort(), user: 'root'},
})
const calls = async () => (await readFile(join(tmp.path, 'calls'), 'utf8')).trim().split('\n')

describe('mo_ctl controller', () => {
  it('runs mo_ctl stop, confirms with mo_ctl status, and mo_ctl start — a path with spaces and quotes too', async () => {
    const dir = join(tmp.path, "mo ctl's dir")
    await mkdir(dir)
    const moCtl = join(dir, 'mo_ctl')
    await fakeMoCtl(moCtl, 'works')
    const controller = createController(await settings(moCtl))
    await controller.stop()
    await controller.start()
    expect(await calls()).toEqual(['stop', 'status', 'start'])
    const quoted = `'${moCtl.replaceAll("'", String.raw`'\''`)}'`
    expect(controller.describe()).toBe(`mo_ctl: ${quoted} stop / ${quoted} start`)
  })

  it('defaults to mo_ctl on PATH', async () => {
    await fakeMoCtl(join(tmp.path, 'mo_ctl'), 'works')
    vi.stubEnv('PATH', `${tmp.path}:${process.env.PATH}`)
    const controller = createController(await settings())
    await controller.stop()
    expect(await calls()).toEqual(['stop', 'status'])
    expect(controller.describe()).toBe('mo_ctl: mo_ctl stop / mo_ctl start')
  })

  it('fails with exit 5 and mo_ctl last line when mo_ctl stop gives up', async () => {
    const moCtl = join(tmp.path, 'mo_ctl')
    await fakeMoCtl(moCtl, 'fails')
    await expect(createController(await settings(moCtl)).stop()).rejects.toMatchObject({
      exitCode: 5,
      message: expect.stringMatching(/^stop command failed \(exit 1\): .*Stop failed after a maximum of 10 times$/),
    })
    expect(await calls()).toEqual(['stop'])
  })

  it('fails with exit 5 when mo_ctl stop says it succeeded but mo_ctl status still reports the service', async () => {
    const moCtl = join(tmp.path, 'mo_ctl')
    await fakeMoCtl(moCtl, 'lies')
    await expect(createController(await settings(moCtl)).stop()).rejects.toMatchObject({
      exitCode: 5,
      message: `stop command returned, but \`${moCtl} status\` says the service still runs`,
    })
    expect(await calls()).toEqual(['stop', 'status'])
  })
})
