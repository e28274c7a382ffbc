import {Writable} from 'node:stream'
import {afterEach, describe, expect, it} from 'vitest'

import {type Flow, type FlowEvent} from '../../../../src/lib/steps.js'
import {plainLog, PROGRESS_EVERY_MS, runFlowWithTasks} from '../../../../src/lib/ui/tasks.js'

/** A terminal for listr2's tree: says it is a TTY, 120 columns, keeps what was written. */
function fakeTerminal(): {stream: NodeJS.WritableStream; text: () => string} {
  let out = ''
  const stream = Object.assign(
    new Writable({
      write(chunk, _encoding, done) {
        out += chunk
        done()
      },
    }),
    {columns: 120, isTTY: true, rows: 40},
  )
  return {stream, text: () => out}
}

/**
 * The tree sets listr2's forceTTY, which marks process.stdout and process.stderr as TTYs for good:
 * put them back after each test, as the unit files share their process (vitest.config.ts,
 * isolate: false) and @oclif/core, loaded later by another file, reads the width of a "TTY"
 * that has none.
 */
const realTty = {stderr: process.stderr.isTTY, stdout: process.stdout.isTTY}
afterEach(() => {
  for (const name of ['stderr', 'stdout'] as const) {
    const stream = process[name] as {isTTY?: boolean}
    if (realTty[name] === undefined) delete stream.isTTY
    else stream.isTTY = realTty[name]
  }
})

// eslint-disable-next-line no-control-regex
const stripAnsi = (s: string) => s.replaceAll(/\u001B\[[\d;?]*[A-Za-z]/g, '')

interface Ctx {
  clone: boolean
  log: string[]
}

/** Shaped like backup's flow: two "Start service" steps, of which one is always skipped. */
function backupLike(): Flow<Ctx> {
  const step = (title: string, skip?: (ctx: Ctx) => false | string) => ({
    async run(ctx: Ctx) {
      ctx.log.push(title)
    },
    skip,
    title,
  })
  return {
    steps: [
      step('Open repository'),
      step('Find the base backup', () => 'full backup'),
      step('Clone the files to pack', (ctx) => (ctx.clone ? false : 'packing straight from the data directory')),
      step('Start service', (ctx) => (ctx.clone ? false : 'after the pack')),
      {
        async run(ctx, report) {
          ctx.log.push('pack')
          await new Promise((resolve) => {
            setTimeout(resolve, 1100)
          })
          report.progress({bytesDone: 50, bytesTotal: 100, filesDone: 1, filesTotal: 2})
          await new Promise((resolve) => {
            setTimeout(resolve, 150)
          })
          report.output('2 files packed')
        },
        title: 'Pack, compress and encrypt',
      },
      step('Start service', (ctx) => (ctx.clone ? 'started after the clone' : false)),
      step('Publish'),
    ],
  }
}

describe('runFlowWithTasks on a terminal', () => {
  it('shows the steps that run, with percent and ETA, and never a skipped one', async () => {
    const terminal = fakeTerminal()
    const ctx = await runFlowWithTasks(
      backupLike(),
      {clone: false, log: []},
      {mode: 'tty', signal: new AbortController().signal, stream: terminal.stream},
    )
    expect(ctx.log).toEqual(['Open repository', 'pack', 'Start service', 'Publish'])
    const text = stripAnsi(terminal.text())
    expect(text).toContain('Open repository')
    expect(text).toMatch(/50%, files 1\/2, 50 B\/100 B, 0 MB\/s, ETA 1s/)
    expect(text).toContain('2 files packed')
    expect(text).toContain('Publish')
    expect(text).not.toContain('Find the base backup')
    expect(text).not.toContain('Clone the files')
    expect(text).not.toContain('SKIPPED')
    expect(text).not.toContain('after the pack')
    // The last frame is the whole tree: "Start service" once.
    const last = text.slice(text.lastIndexOf('Open repository'))
    expect(last.match(/Start service/g)).toHaveLength(1)
  })
})

describe('runFlowWithTasks without a terminal', () => {
  it('logs a timestamped start and end line per step that runs, nothing for a skipped one', async () => {
    const terminal = fakeTerminal()
    await runFlowWithTasks(
      backupLike(),
      {clone: true, log: []},
      {mode: 'plain', signal: new AbortController().signal, stream: terminal.stream},
    )
    const lines = terminal.text().trimEnd().split('\n')
    for (const line of lines) expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ [A-Z][^:]+: /)
    const steps = [
      'Open repository',
      'Clone the files to pack',
      'Start service',
      'Pack, compress and encrypt',
      'Publish',
    ]
    for (const step of steps) {
      expect(lines.filter((l) => l.includes(` ${step}: started`))).toHaveLength(1)
      expect(lines.filter((l) => new RegExp(` ${step}: done in \\d`).test(l))).toHaveLength(1)
    }

    expect(terminal.text()).not.toContain('Find the base backup')
    // 5 steps × (start, end), the pack's one output line; its progress came before 10 s.
    expect(lines).toHaveLength(11)
  })
})

describe('plainLog', () => {
  it('prints at most one progress line every 10 s, with percent and ETA', () => {
    let now = Date.UTC(2026, 11, 1, 1, 2, 3)
    const out: string[] = []
    const log = plainLog(
      (text) => out.push(text),
      () => now,
    )
    const step = 'Pack, compress and encrypt'
    log({step, type: 'start'})
    // Five progress reports a second for a minute, as the packer sends them.
    for (let i = 1; i <= 300; i++) {
      now += 200
      log({
        progress: {bytesDone: i, bytesTotal: 600, filesDone: i, filesTotal: 600},
        step,
        type: 'progress',
      } as FlowEvent)
    }

    log({step, type: 'end'})
    const progress = out.filter((l) => l.includes('%'))
    expect(progress).toHaveLength(60_000 / PROGRESS_EVERY_MS)
    expect(progress[0]).toBe(
      '2026-12-01T01:02:13Z Pack, compress and encrypt: 8%, files 50/600, 50 B/600 B, 0 MB/s, ETA 1m50s\n',
    )
    expect(out.at(-1)).toBe('2026-12-01T01:03:03Z Pack, compress and encrypt: done in 1m0s\n')
  })

  it('says which step failed, and logs the rollback as a step', async () => {
    const out: string[] = []
    const flow: Flow<object> = {
      async rollback(_ctx, _error, report) {
        report.output('removing the unfinished backup')
      },
      steps: [
        {
          async run() {
            throw new Error('disk full')
          },
          title: 'Pack, compress and encrypt',
        },
      ],
    }
    const stream = new Writable({
      write(chunk, _encoding, done) {
        out.push(String(chunk))
        done()
      },
    })
    await expect(
      runFlowWithTasks(flow, {}, {mode: 'plain', signal: new AbortController().signal, stream}),
    ).rejects.toThrow('disk full')
    expect(out.map((l) => l.replace(/^\S+ /, ''))).toEqual([
      'Pack, compress and encrypt: started\n',
      expect.stringMatching(/^Pack, compress and encrypt: failed after \d+ms\n$/),
      'Roll back: started\n',
      'Roll back: removing the unfinished backup\n',
      expect.stringMatching(/^Roll back: done in \d+ms\n$/),
    ])
  })
})
describe('runFlowWithTasks and Ctrl-C', () => {
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
