/**
 * checkServiceSettings: before anything is stopped, each --service kind says what it lacks
 * (exit 2): the stop and start commands, a findable mo_ctl, systemctl and a unit.
 */
import {chmod, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {checkServiceSettings} from '../../../../src/lib/service/controller.js'
import {type ServiceSettings} from '../../../../src/lib/service/types.js'
import {tempDir} from '../../../helpers/cli.js'

let tmp: {cleanup: () => Promise<void>; path: string}
beforeAll(async () => {
  tmp = await tempDir()
  for (const [name, mode] of [
    ['mo_ctl', 0o755],
    ['systemctl', 0o755],
    ['not-executable', 0o644],
  ] as const) {
    await writeFile(join(tmp.path, name), '#!/bin/sh\n')
    await chmod(join(tmp.path, name), mode)
  }
})
afterAll(async () => tmp.cleanup())

const sql = {deadlineMs: 1000, host: '127.0.0.1', port: 6001, user: 'root'}
const check =
  (settings: Partial<ServiceSettings>, PATH = tmp.path) =>
  () =>
    checkServiceSettings({kind: 'none', sql, ...settings}, {PATH})

describe('checkServiceSettings', () => {
  it('accepts each kind with what it needs', () => {
    expect(check({kind: 'none'}, '')).not.toThrow()
    expect(check({kind: 'command', startCommand: 'a', stopCommand: 'b'}, '')).not.toThrow()
    expect(check({kind: 'mo_ctl'})).not.toThrow()
    expect(check({kind: 'mo_ctl', moCtl: join(tmp.path, 'mo_ctl')}, '')).not.toThrow()
    expect(check({kind: 'systemd', unit: 'matrixone'})).not.toThrow()
  })

  it('--service command needs both commands', () => {
    expect(check({kind: 'command', stopCommand: 'b'})).toThrow(
      expect.objectContaining({exitCode: 2, message: '--service command needs both --stop-cmd and --start-cmd'}),
    )
  })

  it('--service mo_ctl needs mo_ctl on PATH, or --mo-ctl naming an executable file', () => {
    expect(check({kind: 'mo_ctl'}, '/nonexistent')).toThrow(
      expect.objectContaining({
        exitCode: 2,
        message: 'mo_ctl not found on PATH',
        suggestions: [expect.stringContaining('--mo-ctl PATH')],
      }),
    )
    for (const moCtl of [join(tmp.path, 'not-executable'), join(tmp.path, 'missing'), tmp.path]) {
      expect(check({kind: 'mo_ctl', moCtl})).toThrow(
        expect.objectContaining({exitCode: 2, message: `mo_ctl script ${moCtl} is not an executable file`}),
      )
    }
  })

  it('--service systemd needs systemctl on PATH and a unit', () => {
    expect(check({kind: 'systemd', unit: 'matrixone'}, '/nonexistent')).toThrow(
      expect.objectContaining({exitCode: 2, message: expect.stringMatching(/^systemctl not found on PATH/)}),
    )
    expect(check({kind: 'systemd', unit: ''})).toThrow(
      expect.objectContaining({exitCode: 2, message: '--service systemd needs a unit name'}),
    )
  })
})
