/** steps.ts Script: a flow whose steps hand their outputs on, as backupFlow is built. */
import {describe, expect, it} from 'vitest'

import {BrError} from '../../../src/lib/errors.js'
import {runFlow, Script} from '../../../src/lib/steps.js'

interface Held {
  undone: string[]
}

const build = (options: {fail?: boolean; twice: boolean}) =>
  Script.begin<Held, {n: number; seen: string[]}>()
    .step('one', async ({n}) => ({doubled: n * 2}))
    .stepIf(options.twice, 'maybe', async ({n}) => ({n: n + 1}))
    .pipe((s) =>
      s.step('two', async ({doubled, n, seen}) => {
        if (options.fail) throw new BrError('error', 'two failed')
        return {seen: [...seen, `n=${n} doubled=${doubled}`]}
      }),
    )

describe('Script', () => {
  it("merges each step's output into the next step's input; a left-out step leaves the value it began with", async () => {
    const events: string[] = []
    for (const twice of [true, false]) {
      const script = build({twice})
      const ctx = {state: {undone: []}, values: {n: 1, seen: []}}
      await runFlow(script.flow(), ctx, {onEvent: (e) => events.push(`${e.type}:${e.step}`)})
      expect(script.output(ctx)).toEqual({doubled: 2, n: twice ? 2 : 1, seen: [`n=${twice ? 2 : 1} doubled=2`]})
    }

    // A left-out step is not in the flow at all: no skip event, nothing shown.
    expect(events).toEqual([
      'start:one',
      'end:one',
      'start:maybe',
      'end:maybe',
      'start:two',
      'end:two',
      'start:one',
      'end:one',
      'start:two',
      'end:two',
    ])
  })

  it('gives the rollback the state the steps recorded', async () => {
    const script = Script.begin<Held, object>()
      .step('hold', async (_input, state) => {
        state.undone.push('held')
      })
      .step('fail', async () => {
        throw new BrError('error', 'failed')
      })
    const ctx = {state: {undone: [] as string[]}, values: {}}
    const flow = script.flow(async (state) => {
      state.undone.push('rolled back')
    })
    await expect(runFlow(flow, ctx)).rejects.toThrow('failed')
    expect(ctx.state.undone).toEqual(['held', 'rolled back'])
  })
})
