/**
 * One table of exit codes and one error class for the whole plugin.
 *
 * BrError carries both `exitCode` (read by oclif under --json) and `oclif.exit` (read otherwise,
 * and by runHook, which swallows a plain Error thrown in a hook). Messages are lowercase with no
 * final period and name the thing; `suggestions` say what to do (printed as HINT lines).
 */
export const ExitCode = {
  error: 1,
  integrity: 3,
  interrupted: 130,
  locked: 4,
  ok: 0,
  service: 5,
  usage: 2,
} as const

export type ExitCodeName = keyof typeof ExitCode

export interface BrErrorOptions {
  cause?: unknown
  /** what to do about it, one line each */
  suggestions?: string[]
}

export class BrError extends Error {
  readonly code: ExitCodeName
  readonly exitCode: number
  readonly oclif: {exit: number}
  readonly suggestions: string[]

  constructor(code: ExitCodeName, message: string, options: BrErrorOptions = {}) {
    super(message, {cause: options.cause})
    this.name = 'BrError'
    this.code = code
    this.exitCode = ExitCode[code]
    this.oclif = {exit: ExitCode[code]}
    this.suggestions = options.suggestions ?? []
  }
}

export const usageError = (message: string, ...suggestions: string[]) => new BrError('usage', message, {suggestions})
export const integrityError = (message: string, ...suggestions: string[]) =>
  new BrError('integrity', message, {suggestions})
export const serviceError = (message: string, ...suggestions: string[]) =>
  new BrError('service', message, {suggestions})

/** `error` again, its message prefixed with `label` (which backup, which object): code, cause and suggestions kept. */
export function labelled(error: BrError, label: string): BrError {
  return new BrError(error.code, `${label}: ${error.message}`, {cause: error.cause, suggestions: error.suggestions})
}

export function isBrError(error: unknown): error is BrError {
  return error instanceof BrError
}

/** Throws the signal's reason as an `interrupted` BrError when the operation was aborted. */
export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new BrError('interrupted', 'interrupted', {cause: signal.reason})
}
