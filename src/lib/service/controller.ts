/**
 * Stops and starts the MO service around a restore or a cold backup, by the method the
 * settings name (`--service`): `mo_ctl` (`mo_ctl stop|start`, a stop confirmed by `mo_ctl
 * status`, which exits 0 while a mo-service runs), `systemd` (`systemctl stop|start <unit>`,
 * confirmed by `systemctl is-active`), `command` (the user's own shell commands), `none` (does
 * nothing). Every kind is one entry in `controllers`; all but `none` are shell command lines run
 * through `shellController`. `checkServiceSettings` says up front what a kind lacks (exit 2).
 *
 * Guarantees: `stop` resolves only when the stop command exited 0, the status command (if the
 * kind has one) says the service is not running, and the service no longer answers SQL on
 * host:port (a stop command that returns while the server still runs would otherwise let a
 * restore swap the data directory under it); `start` resolves when the start command exited 0,
 * which means "launching", like `mo_ctl start`: readiness is `waitForSql`'s job. Failures are
 * `service` BrErrors (exit 5) naming the command's exit and its last line of output; an abort
 * ends the command's process group and rejects with `interrupted`. Command lines are printed
 * (in describe(), errors, hints) with their passwords hidden (redactCommand in ../redact.ts:
 * `mysqladmin -p*** shutdown`), and the commands run without our secret environment variables.
 * Not: idempotence or retries beyond what the commands themselves do (mo_ctl retries its stop,
 * STOP_INTERVAL apart), and no check that the commands act on the same server as host:port.
 */
import {accessSync, constants, statSync} from 'node:fs'
import {delimiter, join} from 'node:path'

import {BrError, throwIfAborted, usageError} from '../errors.js'
import {formatDuration} from '../format.js'
import {redactCommand} from '../redact.js'
import {lastLine, runShell, type ShellResult} from './spawn.js'
import {isAnsweringSql} from './sql.js'
import {type ServiceSettings, type SqlSettings} from './types.js'

export interface ServiceController {
  /** a short description for progress lines and logs */
  describe(): string
  start(signal?: AbortSignal): Promise<void>
  stop(signal?: AbortSignal): Promise<void>
}

export interface ControllerOptions {
  /** how long one stop or start command may run (default 5 minutes) */
  commandTimeoutMs?: number
  /** after a stop command returned: how long the service may still answer SQL (default 10 s) */
  stopSettleMs?: number
}

type ControllerFactory = (settings: ServiceSettings, options: ControllerOptions) => ServiceController

/** One entry per `--service` kind: adding a kind to ServiceSettings makes this table ask for it. */
const controllers: {[K in ServiceSettings['kind']]: ControllerFactory} = {
  command(settings, options) {
    if (!settings.stopCommand || !settings.startCommand) {
      throw new BrError('usage', '--service command needs both --stop-cmd and --start-cmd', {
        suggestions: ['e.g. --stop-cmd "mo_ctl stop" --start-cmd "mo_ctl start"'],
      })
    }

    return shellController(
      {label: 'command', sql: settings.sql, startCommand: settings.startCommand, stopCommand: settings.stopCommand},
      options,
    )
  },
  // mo_ctl_standalone: `status` exits 0 while a mo-service runs ("At least one mo-service is running").
  // eslint-disable-next-line camelcase -- the key is the --service value, as mo_ctl is spelled
  mo_ctl(settings, options) {
    const bin = shellQuote(settings.moCtl ?? 'mo_ctl')
    return shellController(
      {
        label: 'mo_ctl',
        sql: settings.sql,
        startCommand: `${bin} start`,
        stillRunning: `${bin} status`,
        stopCommand: `${bin} stop`,
      },
      options,
    )
  },
  none: () => ({
    describe: () => 'none: the service is not managed',
    async start() {},
    async stop() {},
  }),
  systemd(settings, options) {
    const unit = shellQuote(settings.unit ?? 'matrixone')
    return shellController(
      {
        label: 'systemd',
        sql: settings.sql,
        startCommand: `systemctl start ${unit}`,
        stillRunning: `systemctl is-active --quiet ${unit}`,
        stopCommand: `systemctl stop ${unit}`,
      },
      options,
    )
  },
}

/** One word for /bin/sh, whatever it holds. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", String.raw`'\''`)}'`
}

/**
 * Checks, before anything is stopped, that the settings can work here: the commands a kind needs
 * are given and can be found. Throws a usage BrError (exit 2) naming what is missing.
 */
export function checkServiceSettings(settings: ServiceSettings, env: NodeJS.ProcessEnv = process.env): void {
  switch (settings.kind) {
    case 'command': {
      if (!settings.stopCommand || !settings.startCommand) {
        throw usageError(
          '--service command needs both --stop-cmd and --start-cmd',
          'e.g. --stop-cmd "mo_ctl stop" --start-cmd "mo_ctl start"',
        )
      }

      break
    }

    case 'mo_ctl': {
      const moCtl = settings.moCtl || 'mo_ctl'
      if (!findExecutable(moCtl, env)) {
        throw usageError(
          moCtl.includes('/') ? `mo_ctl script ${moCtl} is not an executable file` : `${moCtl} not found on PATH`,
          'pass --mo-ctl PATH (mo_ctl_standalone installs /usr/local/bin/mo_ctl), or `moctl br config set mo-ctl PATH`',
        )
      }

      break
    }

    case 'none': {
      break
    }

    case 'systemd': {
      if (!settings.unit)
        throw usageError('--service systemd needs a unit name', 'pass --unit NAME, e.g. --unit matrixone')
      if (!findExecutable('systemctl', env)) {
        throw usageError(
          'systemctl not found on PATH: --service systemd needs a host run by systemd',
          'use --service mo_ctl or --service command on this host',
        )
      }

      break
    }
  }
}

/** The path of an executable file: `name` itself when it holds a '/', else the first on PATH. */
function findExecutable(name: string, env: NodeJS.ProcessEnv): string | undefined {
  const candidates = name.includes('/')
    ? [name]
    : (env.PATH ?? '')
        .split(delimiter)
        .filter(Boolean)
        .map((dir) => join(dir, name))
  return candidates.find((path) => {
    try {
      accessSync(path, constants.X_OK)
      return statSync(path).isFile()
    } catch {
      return false
    }
  })
}

export function createController(settings: ServiceSettings, options: ControllerOptions = {}): ServiceController {
  const factory = controllers[settings.kind]
  if (!factory) throw new BrError('usage', `unknown service kind: ${String(settings.kind)}`)
  return factory(settings, options)
}

export interface ShellControllerSpec {
  /** the kind, for describe(): 'command', 'mo_ctl', 'systemd' */
  label: string
  /** where the service answers SQL, to confirm a stop; omit to trust the stop command alone */
  sql?: SqlSettings
  startCommand: string
  /** after a stop: a command whose exit 0 means the service still runs (mo_ctl status, systemctl is-active) */
  stillRunning?: string
  stopCommand: string
}

/** A controller that runs one shell command line to stop and another to start. */
export function shellController(spec: ShellControllerSpec, options: ControllerOptions = {}): ServiceController {
  const {commandTimeoutMs = 300_000, stopSettleMs = 10_000} = options
  return {
    describe: () => `${spec.label}: ${redactCommand(spec.stopCommand)} / ${redactCommand(spec.startCommand)}`,
    async start(signal) {
      await runCommand('start', spec.startCommand, commandTimeoutMs, signal)
    },
    async stop(signal) {
      await runCommand('stop', spec.stopCommand, commandTimeoutMs, signal)
      if (spec.stillRunning) {
        const status = await runShell(spec.stillRunning, {signal, timeoutMs: commandTimeoutMs})
        if (status.exitCode === 0) {
          throw new BrError(
            'service',
            `stop command returned, but \`${redactCommand(spec.stillRunning)}\` says the service still runs`,
            {
              suggestions: [`stop it by hand (${redactCommand(spec.stopCommand)}), then run again`],
            },
          )
        }
      }

      if (spec.sql) await waitUntilSilent(spec.sql, stopSettleMs, signal)
    },
  }
}

async function runCommand(action: 'start' | 'stop', command: string, timeoutMs: number, signal?: AbortSignal) {
  throwIfAborted(signal)
  let result: ShellResult
  try {
    result = await runShell(command, {signal, timeoutMs})
  } catch (error) {
    throw new BrError('service', `could not run the ${action} command: ${(error as Error).message}`, {
      cause: error,
      suggestions: [`check that /bin/sh can run: ${redactCommand(command)}`],
    })
  }

  if (result.aborted) throw new BrError('interrupted', `${action} command interrupted`, {cause: signal?.reason})
  if (result.exitCode === 0 && !result.timedOut) return
  // The command's own words, less any secret we know of or that looks like one (a script may echo
  // its own command line, password included).
  const line = redactCommand(lastLine(result.stderr) || lastLine(result.stdout))
  const how = result.timedOut
    ? `timed out after ${formatDuration(timeoutMs)}`
    : result.signal
      ? `failed (killed by ${result.signal})`
      : `failed (exit ${result.exitCode})`
  throw new BrError('service', `${action} command ${how}${line ? `: ${line}` : ''}`, {
    suggestions: [
      `run it by hand to see its whole output: ${redactCommand(command)}`,
      ...(result.timedOut
        ? [`it must return once the service has ${action === 'stop' ? 'exited' : 'been launched'}`]
        : []),
    ],
  })
}

/** After a stop: the service must stop answering SQL within `settleMs`. */
async function waitUntilSilent(sql: SqlSettings, settleMs: number, signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + settleMs
  for (;;) {
    throwIfAborted(signal)
    // eslint-disable-next-line no-await-in-loop -- polling: one probe after the other
    if (!(await isAnsweringSql(sql, {timeoutMs: 2000}))) return
    if (Date.now() >= deadline) break
    // eslint-disable-next-line no-await-in-loop -- the pause between two probes
    await new Promise((resolve) => {
      setTimeout(resolve, 200)
    })
  }

  throw new BrError(
    'service',
    `stop command returned but the service still answers SQL on ${sql.host}:${sql.port} after ${formatDuration(settleMs)}`,
    {suggestions: ['the stop command must return only once the service has exited (e.g. wait until its pid is gone)']},
  )
}
