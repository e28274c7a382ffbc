/**
 * The one child_process wrapper of the service layer: runs a user's shell command line
 * (`/bin/sh -c`), the way `--stop-cmd` / `--start-cmd` and, later, `mo_ctl` and `systemctl` run.
 *
 * Guarantees: the command never sees our secrets (SECRET_ENV of ../redact.ts is taken out of its
 * environment, whatever `env` the caller passes); it never throws for a failing command, it
 * reports how the command ended (exit code, signal, timed out, aborted) with the tail of its
 * stderr and stdout, for the caller to turn into a message; on timeout or abort the command's
 * whole process group gets SIGTERM, then SIGKILL after a grace period, and the promise settles
 * only once the shell has exited.
 * It resolves when the shell exits, not when its pipes close: a start command leaves a daemon
 * behind, and a daemon that forgot to close an inherited stdout must not hold us until the
 * timeout.
 *
 * Not: a shell quoting helper, a way to read large outputs (only the last few KiB are kept), or
 * a guarantee about what the command left running: a detached daemon is its own business.
 */
import {spawn} from 'node:child_process'

import {childEnv} from '../redact.js'

export interface ShellOptions {
  cwd?: string
  /** the environment to start from (default process.env), always without SECRET_ENV */
  env?: NodeJS.ProcessEnv
  /** between SIGTERM and SIGKILL on timeout or abort */
  killGraceMs?: number
  signal?: AbortSignal
  timeoutMs?: number
}

export interface ShellResult {
  aborted: boolean
  elapsedMs: number
  /** null when the shell was killed by a signal */
  exitCode: null | number
  /** set when the shell was killed by a signal */
  signal: NodeJS.Signals | null
  /** the last TAIL_BYTES of stderr */
  stderr: string
  /** the last TAIL_BYTES of stdout */
  stdout: string
  timedOut: boolean
}

const TAIL_BYTES = 8192
/** after the shell exits, how long to wait for its pipes to drain before giving up on them */
const DRAIN_MS = 100

export function runShell(command: string, options: ShellOptions = {}): Promise<ShellResult> {
  const {killGraceMs = 2000, signal, timeoutMs} = options
  const started = Date.now()
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      resolve({...emptyResult(), aborted: true})
      return
    }

    // detached: the command gets its own process group, so a timeout or abort can end the
    // shell and whatever it is waiting for (a `sleep`, a `mo_ctl` loop), not only the shell.
    const child = spawn('/bin/sh', ['-c', command], {
      cwd: options.cwd,
      detached: true,
      // Never our secrets: a daemon the start command leaves behind would keep them for its whole life.
      env: childEnv(options.env ?? process.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const stdout = tail()
    const stderr = tail()
    child.stdout.on('data', stdout.push)
    child.stderr.on('data', stderr.push)

    let timedOut = false
    let aborted = false
    let killTimer: NodeJS.Timeout | undefined
    const terminate = () => {
      killGroup(child.pid, 'SIGTERM')
      killTimer ??= setTimeout(() => killGroup(child.pid, 'SIGKILL'), killGraceMs)
    }

    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true
            terminate()
          }, timeoutMs)
    const onAbort = () => {
      aborted = true
      terminate()
    }

    signal?.addEventListener('abort', onAbort, {once: true})
    const done = () => {
      clearTimeout(timer)
      clearTimeout(killTimer)
      signal?.removeEventListener('abort', onAbort)
    }

    child.on('error', (error) => {
      done()
      reject(error)
    })
    child.on('exit', (exitCode, exitSignal) => {
      done()
      const finish = () => {
        clearTimeout(drain)
        child.stdout.destroy()
        child.stderr.destroy()
        resolve({
          aborted,
          elapsedMs: Date.now() - started,
          exitCode,
          signal: exitSignal,
          stderr: stderr.text(),
          stdout: stdout.text(),
          timedOut,
        })
      }

      // 'close' follows quickly unless a grandchild still holds the pipes open.
      const drain = setTimeout(finish, DRAIN_MS)
      child.once('close', finish)
    })
  })
}

/** The last non-empty line of a command's output, for a one-line error message. */
export function lastLine(text: string): string {
  const lines = text.split(/\r?\n/).map((line) => line.trim())
  return lines.findLast((line) => line.length > 0) ?? ''
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return
  try {
    process.kill(-pid, signal)
  } catch {
    // the group is already gone
  }
}

function tail() {
  let buffer = Buffer.alloc(0)
  return {
    push(chunk: Buffer) {
      buffer = Buffer.concat([buffer, chunk])
      if (buffer.length > TAIL_BYTES) buffer = buffer.subarray(buffer.length - TAIL_BYTES)
    },
    text: () => buffer.toString('utf8'),
  }
}

function emptyResult(): ShellResult {
  return {aborted: false, elapsedMs: 0, exitCode: null, signal: null, stderr: '', stdout: '', timedOut: false}
}
