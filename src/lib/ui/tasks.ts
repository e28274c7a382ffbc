/**
 * Runs a Flow as a listr2 task tree: the default renderer on a terminal, plain lines when stderr
 * is not one (cron, CI, pipes), nothing under --json. Everything goes to stderr, so stdout carries
 * data only and stays pipeable.
 */
import {Listr, ListrLogger, type ListrTask, ProcessOutput} from 'listr2'

import {type Flow, rollbackOnce, runStep, type StepReporter, toInterrupted} from '../steps.js'

export type RenderMode = 'plain' | 'silent' | 'tty'

export function renderModeFor(options: {json: boolean; stream?: NodeJS.WriteStream}): RenderMode {
  if (options.json) return 'silent'
  return (options.stream ?? process.stderr).isTTY ? 'tty' : 'plain'
}

export async function runFlowWithTasks<C extends object>(
  flow: Flow<C>,
  ctx: C,
  options: {mode: RenderMode; signal: AbortSignal},
): Promise<C> {
  const {mode, signal} = options
  try {
    await tasks<C>(
      mode,
      ctx,
      flow.steps.map((step) => ({
        run: (taskCtx, report) => runStep(step, taskCtx, report, signal),
        skip: step.skip ? (taskCtx: C) => step.skip!(taskCtx) : undefined,
        title: step.title,
      })),
    ).run()
  } catch (error) {
    if (flow.rollback) {
      await tasks<C>(mode, ctx, [
        {run: (taskCtx, report) => rollbackOnce(flow, taskCtx, error, report), title: 'Roll back'},
      ]).run()
    }

    throw toInterrupted(error, signal)
  }

  return ctx
}

interface TaskSpec<C> {
  run(ctx: C, report: StepReporter): Promise<void>
  skip?: (ctx: C) => false | string
  title: string
}

function tasks<C extends object>(mode: RenderMode, ctx: C, specs: TaskSpec<C>[]): Listr<C, 'default', 'simple'> {
  const logger = new ListrLogger({processOutput: new ProcessOutput(process.stderr, process.stderr)})
  return new Listr<C, 'default', 'simple'>(
    specs.map(
      (spec): ListrTask<C, typeof import('listr2').DefaultRenderer, typeof import('listr2').SimpleRenderer> => ({
        rendererOptions: {outputBar: 1, persistentOutput: true},
        // The terminal renderer shows a skip reason instead of the title, the plain one beside it.
        skip: spec.skip
          ? (taskCtx: C) => {
              const reason = spec.skip!(taskCtx)
              return reason && mode === 'tty' ? `${spec.title}: ${reason}` : reason
            }
          : undefined,
        async task(taskCtx, task) {
          await spec.run(taskCtx, {
            output(line) {
              task.output = line
            },
          })
        },
        title: spec.title,
      }),
    ),
    {
      ctx,
      exitOnError: true,
      fallbackRenderer: 'simple',
      fallbackRendererCondition: mode === 'plain',
      fallbackRendererOptions: {logger},
      forceTTY: mode === 'tty',
      // The commands own SIGINT (abort, roll back, exit 130); listr2 must not exit on its own.
      registerSignalListeners: false,
      renderer: 'default',
      rendererOptions: {collapseErrors: false, collapseSubtasks: false, logger},
      silentRendererCondition: mode === 'silent',
    },
  )
}
