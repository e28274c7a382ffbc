/**
 * Turns the service flags into the ServiceControl a flow calls. Stop and start fire the oclif
 * hook events br:service:stop / br:service:start (our hooks in src/hooks/ act on them, and other
 * plugins of a host CLI may listen too); readiness and the database list are SQL via mysql2.
 */
import type {Config} from '@oclif/core'

import type {BrHooks} from './hooks/types.js'
import type {ServiceControl} from './lib/service/control.js'

import {BrError, usageError} from './lib/errors.js'
import {registerSecret} from './lib/redact.js'
import {readSecretLine} from './lib/secret-file.js'
import {checkServiceSettings, createController, shellQuote} from './lib/service/controller.js'
import {isAnsweringSql, listDatabases, waitForSql} from './lib/service/sql.js'
import {SERVICE_KINDS, type ServiceSettings} from './lib/service/types.js'
import {TOOL} from './lib/tool.js'

export interface ServiceFlagValues {
  host: string
  'mo-ctl'?: string
  password?: string
  'password-file'?: string
  port: number
  service: string
  'sql-timeout': number
  'start-cmd'?: string
  'stop-cmd'?: string
  unit?: string
  user: string
}

/**
 * The service flags as ServiceSettings; a usage error (exit 2) when the chosen kind cannot work
 * here, or when the password file cannot be read. The password is registered for redaction.
 */
export function serviceSettingsFrom(flags: ServiceFlagValues, env: NodeJS.ProcessEnv = process.env): ServiceSettings {
  const kind = flags.service as ServiceSettings['kind']
  if (!SERVICE_KINDS.includes(kind)) {
    throw usageError(`unknown --service ${flags.service}`, `use one of: ${SERVICE_KINDS.join(', ')}`)
  }

  const passwordFile = flags['password-file']
  if (passwordFile && flags.password !== undefined && flags.password !== env.MO_PASSWORD) {
    throw usageError('--password and --password-file are two ways to give one password', 'drop --password')
  }

  const settings: ServiceSettings = {
    kind,
    moCtl: flags['mo-ctl'],
    sql: {
      deadlineMs: flags['sql-timeout'] * 1000,
      host: flags.host,
      // The file, when given, wins over MO_PASSWORD.
      password: passwordFile ? readSecretLine(passwordFile, '--password-file') : flags.password,
      port: flags.port,
      user: flags.user,
    },
    startCommand: flags['start-cmd'],
    stopCommand: flags['stop-cmd'],
    unit: flags.unit,
  }
  checkServiceSettings(settings, env)
  registerSecret(settings.sql.password)
  return settings
}

export function serviceControl(
  config: Config,
  settings: ServiceSettings,
  event: {
    dataDir: string
    /** told when another plugin's listener failed */
    onWarning?: (message: string) => void
    /** which command fires the events, e.g. 'br restore' */
    reason: string
  },
): null | ServiceControl {
  const {dataDir, onWarning = () => {}, reason} = event
  if (settings.kind === 'none') return null
  /**
   * Fires the event and waits for every listener (captureErrors: oclif would otherwise rethrow the
   * first error that carries an exit code while our own hook still runs). Only our own hook's
   * outcome decides whether the service stopped or started: another plugin's failure is a warning,
   * never a reason to believe the service is in another state than the one our hook left it in.
   */
  const fire = async (event: 'br:service:start' | 'br:service:stop', signal?: AbortSignal) => {
    const result = await config.runHook<typeof event, BrHooks>(
      event,
      {dataDir, reason, service: settings, signal},
      undefined,
      true,
    )
    for (const failure of result.failures) {
      if (failure.plugin.name !== TOOL.name)
        onWarning(`${event} listener of ${failure.plugin.name} failed (ignored): ${failure.error.message}`)
    }

    const ours = result.failures.find((f) => f.plugin.name === TOOL.name)
    if (ours) {
      throw ours.error instanceof BrError
        ? ours.error
        : new BrError('service', `${event} hook failed: ${ours.error.message}`)
    }

    if (!result.successes.some((s) => s.plugin.name === TOOL.name)) {
      throw new BrError('service', `${event}: the hook of ${TOOL.name} did not run`, {
        suggestions: ['reinstall the plugin: its oclif manifest or hooks are missing'],
      })
    }
  }

  /**
   * A stop cut short by Ctrl-C may have stopped the service half-way (mo_ctl had already sent its
   * kill, a stop script had shut one process down): unless it still answers SQL, run the start
   * command again, as the flows' rollbacks do after a stop that finished, so that an interrupted
   * run does not leave it down. Only the start command: the operator asked us to stop waiting,
   * so readiness is not awaited. It runs on a signal of its own (the command's is aborted); a
   * second Ctrl-C still exits at once.
   */
  const startAfterInterruptedStop = async (interrupted: unknown) => {
    if (await isAnsweringSql(settings.sql)) return
    try {
      await fire('br:service:start', new AbortController().signal)
    } catch (error) {
      throw new BrError(
        'service',
        `interrupted while stopping the service, and starting it again failed: ${(error as Error).message}`,
        {cause: interrupted, suggestions: ['check the service and start it by hand']},
      )
    }

    onWarning('the stop was interrupted: the start command was run again (not waiting for the service to answer SQL)')
  }

  return {
    describe: createController(settings).describe(),
    listDatabases: (signal) => listDatabases(settings.sql, {signal}),
    start: (signal) => fire('br:service:start', signal),
    startHint: startCommandOf(settings),
    async stop(signal) {
      try {
        await fire('br:service:stop', signal)
      } catch (error) {
        if (signal.aborted) await startAfterInterruptedStop(error)
        throw error
      }
    },
    waitReady: (signal) => waitForSql(settings.sql, {signal}),
  }
}

/** The command line that starts the service by hand, as the controller would run it. */
function startCommandOf(settings: ServiceSettings): string {
  switch (settings.kind) {
    case 'command': {
      return settings.startCommand ?? ''
    }

    case 'mo_ctl': {
      return `${shellQuote(settings.moCtl ?? 'mo_ctl')} start`
    }

    case 'systemd': {
      return `systemctl start ${shellQuote(settings.unit ?? 'matrixone')}`
    }

    default: {
      return ''
    }
  }
}

/** For --service none: is something answering SQL where the service would be? */
export const sqlProbe = (settings: ServiceSettings) => () => isAnsweringSql(settings.sql)
