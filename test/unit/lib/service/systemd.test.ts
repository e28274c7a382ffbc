/**
 * The systemd controller runs `systemctl stop|start <unit>` and confirms a stop with
 * `systemctl is-active --quiet <unit>`. No systemd runs here: a real `systemctl` script first on
 * PATH records its arguments and keeps the unit's state in a file.
 */
import {chmod, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it, vi} from 'vitest'

import {createController} from '../../../../src/lib/service/controller.js'
import {tempDir, type TempDir} from '../../../helpers/cli.js'
import {freePort} from '../../../helpers/net.js'

let tmp: TempDir

async function fakeSystemctl(options: {stopWorks: boolean}): Promise<void> {
  const script = `#!/bin/sh
echo "$*" >> '${tmp.path}/calls'
case "$1" in
  stop) ${options.stopWorks ? `echo inactive > '${tmp.path}/state'` : 'true'} ;;
  start) echo active > '${tmp.path}/state' ;;
  is-active) [ "$(cat '${tmp.path}/state')" = active ] ;;
esac
`
  await writeFile(join(tmp.path, 'systemctl'), script)
  await chmod(join(tmp.path, 'systemctl'), 0o755)
  await writeFile(join(tmp.path, 'state'), 'active\n')
}

beforeEach(async () => {
  tmp = await tempDir()
  vi.stubEnv('PATH', `${tmp.path}:${process.env.PATH}`)
})
afterEach(async () => {
  await tmp.cleanup()
})

const settings = async (unit?: string) => ({
  kind: 'systemd' as const,
  sql: {deadlineMs: 1000, host: '127.0.0.1', port: await freePort(), user: 'root'},
  unit,
})

describe('systemd controller', () => {
  it('stops and starts the unit, and confirms the stop with is-active', async () => {
    await fakeSystemctl({stopWorks: true})
    const controller = createController(await settings('mo.service'))
    await controller.stop()
    await controller.start()
    expect((await readFile(join(tmp.path, 'calls'), 'utf8')).trim().split('\n')).toEqual([
      'stop mo.service',
      'is-active --quiet mo.service',
      'start mo.service',
    ])
    expect(controller.describe()).toContain('systemctl stop mo.service')
  })

  it('defaults to the matrixone unit', async () => {
    await fakeSystemctl({stopWorks: true})
    await createController(await settings()).stop()
    expect(await readFile(join(tmp.path, 'calls'), 'utf8')).toContain('stop matrixone')
  })

  it('fails with exit 5 when the unit is still active after the stop', async () => {
    await fakeSystemctl({stopWorks: false})
    await expect(createController(await settings('mo.service')).stop()).rejects.toMatchObject({
      exitCode: 5,
      message: expect.stringContaining('still runs'),
    })
  })
})
