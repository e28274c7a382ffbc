/**
 * Runs a Flow for a person or a log: a listr2 task tree on a terminal, timestamped lines when
 * stderr is not one (cron, CI, pipes), nothing under --json or --quiet. Everything goes to stderr,
 * so stdout carries data only and stays pipeable.
 *
 * Guarantees: a skipped step is never shown, in neither renderer (a step is shown once it is due
 * and not skipped); progress shows a percent and an ETA; the plain log has a start and an end line
 * per step and at most one progress line every PROGRESS_EVERY_MS, so a nightly job's log stays
 * readable. Both renderers run the same steps with the same rollback (steps.ts). listr2 is loaded
 * only for the tree: a run under --json, cron or a pipe never imports it.
 */
import type {Listr, ListrTask} from 'listr2'

import {performance} from 'node:perf_hooks'

import {formatDuration, formatProgress, logTimestamp} from '../format.js'
import {
  type Flow,
  type FlowEvent,
  ROLL_BACK,
  rollbackOnce,
  runFlow,
  runStep,
  type StepReporter,
  toInterrupted,
} from '../steps.js'

export type RenderMode = 'plain' | 'silent' | 'tty'

/** In a log, at most one progress line this often: a cron mail of a long backup stays a page. */
export const PROGRESS_EVERY_MS = 10_000

/** On a terminal the tree redraws anyway; more often than this is only work. */
const TTY_PROGRESS_EVERY_MS = 200

export function renderModeFor(options: {json: boolean; quiet?: boolean; stream?: NodeJS.WriteStream}): RenderMode {
  if (options.json || options.quiet) return 'silent'
  return (options.stream ?? process.stderr).isTTY ? 'tty' : 'plain'
}

export interface RenderOptions {
  /** plain mode's clock (ms since the epoch): tests pass their own */
  now?: () => number
  signal: AbortSignal
  /** where the tree or the log goes: stderr unless a test says otherwise */
  stream?: NodeJS.WritableStream
}

export async function runFlowWithTasks<C extends object>(
  flow: Flow<C>,
  ctx: C,
  options: RenderOptions & {mode: RenderMode},
): Promise<C> {
  const {mode, signal} = options
  const stream = options.stream ?? process.stderr
  if (mode === 'silent') return runFlow(flow, ctx, {signal})
  if (mode === 'plain') {
    return runFlow(flow, ctx, {onEvent: plainLog((line) => stream.write(line), options.now), signal})
  }

  const listr2 = await import('listr2')
  try {
    await tree(listr2, stream, ctx, taskSpecs(flow, signal)).run()
  } catch (error) {
    if (flow.rollback) {
      await tree(listr2, stream, ctx, [
        {due: () => true, run: (taskCtx, report) => rollbackOnce(flow, taskCtx, error, report), title: ROLL_BACK},
      ]).run()
    }

    throw toInterrupted(error, signal)
  }

  return ctx
}

/**
 * The plain renderer: "<UTC time> <step>: <what>" lines, one when a step starts, one when it ends
 * (or fails), its output lines, and its progress at most once every PROGRESS_EVERY_MS.
 */
export function plainLog(write: (text: string) => void, now: () => number = Date.now): (event: FlowEvent) => void {
  let stepStart = now()
  let lastProgress = stepStart
  const line = (step: string, what: string) => write(`${logTimestamp(now())} ${step}: ${what}\n`)
  return (event) => {
    switch (event.type) {
      case 'end': {
        line(event.step, `done in ${formatDuration(now() - stepStart)}`)
        break
      }

      case 'fail': {
        line(event.step, `failed after ${formatDuration(now() - stepStart)}`)
        break
      }

      case 'output': {
        line(event.step, event.line)
        break
      }

      case 'progress': {
        if (now() - lastProgress < PROGRESS_EVERY_MS) return
        lastProgress = now()
        line(event.step, formatProgress(event.progress, lastProgress - stepStart))
        break
      }

      case 'skip': {
        // A skipped step is not news: it is not shown.
        break
      }

      case 'start': {
        stepStart = now()
        lastProgress = stepStart
        line(event.step, 'started')
        break
      }
    }
  }
}

interface TaskSpec<C> {
  /** whether the step is due and not skipped; undefined while an earlier step has not finished */
  due(ctx: C): boolean | undefined
  run(ctx: C, report: StepReporter): Promise<void>
  title: string
}

/**
 * listr2 asks every task whether it is enabled before the first one runs, and again when its turn
 * comes. A skip decided up front would read a context the earlier steps have not filled yet, so a
 * step is decided only once every earlier one has run or been skipped; until then a step that may
 * be skipped is hidden, and one that cannot is shown as pending.
 */
function taskSpecs<C extends object>(flow: Flow<C>, signal: AbortSignal): TaskSpec<C>[] {
  const settled: boolean[] = flow.steps.map(() => false)
  return flow.steps.map((step, i) => ({
    due(ctx) {
      if (settled.slice(0, i).includes(false)) return step.skip ? undefined : true
      const skipped = Boolean(step.skip?.(ctx))
      if (skipped) settled[i] = true
      return !skipped
    },
    async run(ctx, report) {
      try {
        await runStep(step, ctx, report, signal)
      } finally {
        settled[i] = true
      }
    },
    title: step.title,
  }))
}

function tree<C extends object>(
  {Listr, ListrLogger, ProcessOutput}: typeof import('listr2'),
  stream: NodeJS.WritableStream,
  ctx: C,
  specs: TaskSpec<C>[],
): Listr<C, 'default', 'simple'> {
  const output = stream as NodeJS.WriteStream
  const logger = new ListrLogger({processOutput: new ProcessOutput(output, output)})
  return new Listr<C, 'default', 'simple'>(
    specs.map(
      (spec): ListrTask<C, typeof import('listr2').DefaultRenderer, typeof import('listr2').SimpleRenderer> => ({
        enabled: (taskCtx: C) => spec.due(taskCtx) ?? false,
        rendererOptions: {outputBar: 1, persistentOutput: true},
        async task(taskCtx, task) {
          const started = performance.now()
          let shown = 0
          await spec.run(taskCtx, {
            output(line) {
              task.output = line
            },
            progress(p) {
              const now = performance.now()
              if (now - shown < TTY_PROGRESS_EVERY_MS) return
              shown = now
              task.output = formatProgress(p, now - started)
            },
          })
        },
        title: spec.title,
      }),
    ),
    {
      ctx,
      exitOnError: true,
      forceTTY: true,
      // The commands own SIGINT (abort, roll back, exit 130); listr2 must not exit on its own.
      registerSignalListeners: false,
      renderer: 'default',
      rendererOptions: {collapseErrors: false, collapseSubtasks: false, logger},
    },
  )
}
