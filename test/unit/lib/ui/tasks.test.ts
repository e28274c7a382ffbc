import {describe, expect, it} from 'vitest'

import {type Flow} from '../../../../src/lib/steps.js'
import {runFlowWithTasks} from '../../../../src/lib/ui/tasks.js'

describe('runFlowWithTasks', () => {
  it('starts no further step once aborted, rolls back, and reports interrupted (130)', async () => {
    const controller = new AbortController()
    const log: string[] = []
    const flow: Flow<{log: string[]}> = {
      async rollback() {
        log.push('rollback')
      },
      steps: [
        {
          async run() {
            log.push('stop service')
            // Ctrl-C arrives while this step runs; the step itself finishes.
            controller.abort()
          },
          title: 'Stop service',
        },
        {
          async run() {
            log.push('swap')
          },
          title: 'Swap',
        },
      ],
    }
    await expect(runFlowWithTasks(flow, {log}, {mode: 'silent', signal: controller.signal})).rejects.toMatchObject({
      exitCode: 130,
    })
    expect(log).toEqual(['stop service', 'rollback'])
  })
})
