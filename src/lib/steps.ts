/**
 * A flow is a script of named steps with one rollback, like pgBackRest's restore: each step says
 * what it does, the rollback undoes whatever the steps got done (it reads that from the context).
 *
 * Two runners drive the same flow: `runFlow` here (plain, for tests and library use) and the
 * listr2 task tree in src/lib/ui. Neither knows what the steps do.
 *
 * Guarantees: steps run in order, once; after a failure no further step runs and `rollback` runs
 * exactly once with the error; the error that reaches the caller is the step's, unless the
 * rollback itself failed, which is worse news and is reported instead (with the step's as cause).
 */
import {BrError} from './errors.js'

export interface StepReporter {
  /** a line worth keeping (what was done, where): the listr2 task output, or a log line in plain mode */
  output(line: string): void
  /** how far a long step has got: the renderer shows it with a percent and an ETA, and throttles it */
  progress(p: StepProgress): void
}

/** Counts of a long step; a total of 0 means unknown (bytes of a clone). */
export interface StepProgress {
  bytesDone: number
  bytesTotal: number
  filesDone: number
  filesTotal: number
}

export interface Step<C> {
  run(ctx: C, report: StepReporter, signal: AbortSignal): Promise<void>
  /** a reason to skip this step (shown), or false */
  skip?(ctx: C): false | string
  title: string
}

export interface Flow<C> {
  rollback?(ctx: C, error: unknown, report: StepReporter): Promise<void>
  steps: Step<C>[]
}

export type FlowEvent =
  | {error: unknown; step: string; type: 'fail'}
  | {line: string; step: string; type: 'output'}
  | {progress: StepProgress; step: string; type: 'progress'}
  | {reason: string; step: string; type: 'skip'}
  | {step: string; type: 'end'}
  | {step: string; type: 'start'}

export const ROLL_BACK = 'Roll back'

export async function runFlow<C>(
  flow: Flow<C>,
  ctx: C,
  options: {onEvent?: (event: FlowEvent) => void; signal?: AbortSignal} = {},
): Promise<C> {
  const signal = options.signal ?? new AbortController().signal
  const emit = options.onEvent ?? (() => {})
  const reporter = (step: string): StepReporter => ({
    output: (line) => emit({line, step, type: 'output'}),
    progress: (progress) => emit({progress, step, type: 'progress'}),
  })
  let current: string | undefined
  try {
    for (const step of flow.steps) {
      const reason = step.skip?.(ctx)
      if (reason) {
        emit({reason, step: step.title, type: 'skip'})
        continue
      }

      current = step.title
      emit({step: step.title, type: 'start'})
      // Steps are a script: each one needs the previous one done.
      // eslint-disable-next-line no-await-in-loop
      await runStep(step, ctx, reporter(step.title), signal)
      emit({step: step.title, type: 'end'})
      current = undefined
    }
  } catch (error) {
    if (current) emit({error, step: current, type: 'fail'})
    if (flow.rollback) {
      emit({step: ROLL_BACK, type: 'start'})
      try {
        await rollbackOnce(flow, ctx, error, reporter(ROLL_BACK))
      } catch (rollbackError) {
        emit({error: rollbackError, step: ROLL_BACK, type: 'fail'})
        throw rollbackError
      }

      emit({step: ROLL_BACK, type: 'end'})
    }

    throw toInterrupted(error, signal)
  }

  return ctx
}

/**
 * Runs one step, unless the flow was aborted: after Ctrl-C no further step may start (a restore
 * must not swap directories once the operator asked it to stop). Every runner goes through here.
 */
export async function runStep<C>(step: Step<C>, ctx: C, report: StepReporter, signal: AbortSignal): Promise<void> {
  checkAborted(signal)
  await step.run(ctx, report, signal)
}

/** Runs the flow's rollback; if that fails too, the rollback's error (worse news) is what the user must see. */
export async function rollbackOnce<C>(flow: Flow<C>, ctx: C, error: unknown, report: StepReporter): Promise<void> {
  if (!flow.rollback) return
  try {
    await flow.rollback(ctx, error, report)
  } catch (rollbackError) {
    if (rollbackError instanceof BrError) throw rollbackError
    throw new BrError('error', `rollback failed: ${(rollbackError as Error).message}`, {cause: error})
  }
}

export function checkAborted(signal: AbortSignal): void {
  if (signal.aborted) throw new BrError('interrupted', 'interrupted', {cause: signal.reason})
}

/** An abort surfaces as whatever the interrupted call threw (AbortError, ERR_STREAM_PREMATURE_CLOSE…): name it for what it is. */
export function toInterrupted(error: unknown, signal: AbortSignal): unknown {
  // A rollback that could not finish (a service error…) is worse news: keep it.
  if (signal.aborted && !(error instanceof BrError && error.code !== 'error' && error.code !== 'interrupted')) {
    return new BrError('interrupted', 'interrupted; what was done so far was rolled back', {cause: error})
  }

  return error
}

/**
 * A flow written as a typed script: each step gets what the steps before it gave (their outputs
 * merged, starting from the values the run begins with) and returns what it adds. The compiler
 * checks that a step only reads what an earlier step gave, so no context of optional fields is
 * read back with assertions. `state` is the other half: what the rollback must undo (locks held,
 * objects written), which a step records as it goes.
 *
 * Steps that do not apply are left out when the script is built (they are not shown anyway).
 */
export interface ScriptContext<S> {
  state: S
  values: object
}

export type ScriptStep<S, T, O> = (input: T, state: S, report: StepReporter, signal: AbortSignal) => Promise<O>

export class Script<S, T extends object> {
  private constructor(private readonly steps: Step<ScriptContext<S>>[]) {}

  static begin<S, T extends object>(): Script<S, T> {
    return new Script<S, T>([])
  }

  /** The flow to run with `{state, values}`; `values` are the first step's input. */
  flow(rollback?: (state: S, error: unknown, report: StepReporter) => Promise<void>): Flow<ScriptContext<S>> {
    return {
      rollback: rollback && ((ctx, error, report) => rollback(ctx.state, error, report)),
      steps: this.steps,
    }
  }

  /** What the steps gave, once the flow has run to the end. */
  output(ctx: ScriptContext<S>): T {
    return ctx.values as T
  }

  /** Steps another module writes (a source's), spliced in where they belong. */
  pipe<O extends object>(part: (script: Script<S, T>) => Script<S, O>): Script<S, O> {
    return part(this)
  }

  /** A step whose output (an object, or nothing) is merged into the next step's input. */
  step<O extends object = Record<never, never>>(title: string, run: ScriptStep<S, T, O | void>): Script<S, O & T> {
    const step: Step<ScriptContext<S>> = {
      async run(ctx, report, signal) {
        const out = await run(ctx.values as T, ctx.state, report, signal)
        ctx.values = {...ctx.values, ...out}
      },
      title,
    }
    return new Script<S, O & T>([...this.steps, step])
  }

  /**
   * The step only when `when` holds (decided as the script is built, from the options). Its output
   * may only replace values the script already has, so what comes after reads the same type
   * either way: the values the run begins with hold what stands when the step is left out.
   */
  stepIf(when: boolean, title: string, run: ScriptStep<S, T, Partial<T> | void>): Script<S, T> {
    return when ? this.step(title, run) : this
  }
}
