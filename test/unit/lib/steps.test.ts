import {describe, expect, it} from 'vitest'

import {BrError} from '../../../src/lib/errors.js'
import {type Flow, runFlow} from '../../../src/lib/steps.js'

interface Ctx {
  log: string[]
}

function flow(failAt?: string, rollbackFails = false): Flow<Ctx> {
  const step = (title: string) => ({
    async run(ctx: Ctx) {
      ctx.log.push(title)
      if (title === failAt) throw new BrError('service', `${title} failed`)
    },
    title,
  })
  return {
    async rollback(ctx) {
      ctx.log.push('rollback')
      if (rollbackFails) throw new Error('disk gone')
    },
    steps: [step('a'), {...step('b'), skip: () => 'not needed'}, step('c'), step('d')],
  }
}

describe('runFlow', () => {
  it('runs the steps in order, skipping what says so, without a rollback on success', async () => {
    const events: string[] = []
    const ctx = await runFlow(flow(), {log: []}, {onEvent: (e) => events.push(`${e.type}:${e.step}`)})
    expect(ctx.log).toEqual(['a', 'c', 'd'])
    expect(events).toContain('skip:b')
  })

  it('stops at the failing step, rolls back once, and rethrows the step error', async () => {
    const ctx = {log: [] as string[]}
    await expect(runFlow(flow('c'), ctx)).rejects.toMatchObject({code: 'service', message: 'c failed'})
    expect(ctx.log).toEqual(['a', 'c', 'rollback'])
  })

  it('reports a failed rollback, which is worse news than the step that failed', async () => {
    const ctx = {log: [] as string[]}
    await expect(runFlow(flow('a', true), ctx)).rejects.toThrow('rollback failed: disk gone')
  })

  it('an aborted signal stops before the next step and is reported as interrupted (130)', async () => {
    const controller = new AbortController()
    const ctx = {log: [] as string[]}
    const f: Flow<Ctx> = {
      async rollback(c) {
        c.log.push('rollback')
      },
      steps: [
        {
          async run(c) {
            c.log.push('first')
            controller.abort()
          },
          title: 'first',
        },
        {
          async run(c) {
            c.log.push('second')
          },
          title: 'second',
        },
      ],
    }
    await expect(runFlow(f, ctx, {signal: controller.signal})).rejects.toMatchObject({exitCode: 130})
    expect(ctx.log).toEqual(['first', 'rollback'])
  })
})
